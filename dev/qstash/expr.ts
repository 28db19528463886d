/**
 * Evaluator for `Upstash-Retry-Delay` expressions such as `pow(2, retried) * 1000`.
 * QStash documents the variable `retried` and the functions below; the result is in milliseconds.
 * A small recursive-descent parser, so no user text ever reaches `eval`.
 */

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (...a: number[]) => number }> = {
  pow: { arity: [2, 2], fn: (a, b) => Math.pow(a!, b!) },
  sqrt: { arity: [1, 1], fn: (a) => Math.sqrt(a!) },
  abs: { arity: [1, 1], fn: (a) => Math.abs(a!) },
  exp: { arity: [1, 1], fn: (a) => Math.exp(a!) },
  floor: { arity: [1, 1], fn: (a) => Math.floor(a!) },
  ceil: { arity: [1, 1], fn: (a) => Math.ceil(a!) },
  round: { arity: [1, 1], fn: (a) => Math.round(a!) },
  min: { arity: [1, Infinity], fn: (...a) => Math.min(...a) },
  max: { arity: [1, Infinity], fn: (...a) => Math.max(...a) },
};

type Token = { kind: 'num'; value: number } | { kind: 'id'; value: string } | { kind: 'op'; value: string };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([-+*/%(),]))/gy;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`unexpected character at ${pos}: ${JSON.stringify(src.slice(pos, pos + 10))}`);
    if (m[1] !== undefined) out.push({ kind: 'num', value: Number(m[1]) });
    else if (m[2] !== undefined) out.push({ kind: 'id', value: m[2] });
    else out.push({ kind: 'op', value: m[3]! });
    pos = re.lastIndex;
  }
  return out;
}

/** Evaluates `expression` with `retried` bound; throws an Error naming the problem when it is malformed. */
export function evaluateRetryDelay(expression: string, retried: number): number {
  const tokens = tokenize(expression);
  let i = 0;
  const peek = () => tokens[i];
  const isOp = (v: string) => peek()?.kind === 'op' && peek()!.value === v;
  const expect = (v: string) => {
    if (!isOp(v)) throw new Error(`expected '${v}'`);
    i++;
  };

  function primary(): number {
    const t = tokens[i++];
    if (!t) throw new Error('unexpected end of expression');
    if (t.kind === 'num') return t.value;
    if (t.kind === 'op' && t.value === '(') {
      const v = additive();
      expect(')');
      return v;
    }
    if (t.kind === 'op' && (t.value === '-' || t.value === '+')) {
      const v = primary();
      return t.value === '-' ? -v : v;
    }
    if (t.kind === 'id') {
      if (t.value === 'retried') return retried;
      const f = FUNCTIONS[t.value];
      if (!f) throw new Error(`unknown identifier '${t.value}'`);
      expect('(');
      const args: number[] = [];
      if (!isOp(')')) {
        args.push(additive());
        while (isOp(',')) {
          i++;
          args.push(additive());
        }
      }
      expect(')');
      if (args.length < f.arity[0] || args.length > f.arity[1]) throw new Error(`wrong number of arguments to ${t.value}`);
      return f.fn(...args);
    }
    throw new Error(`unexpected '${t.value}'`);
  }
  function multiplicative(): number {
    let v = primary();
    while (isOp('*') || isOp('/') || isOp('%')) {
      const op = tokens[i++]!.value;
      const r = primary();
      v = op === '*' ? v * r : op === '/' ? v / r : v % r;
    }
    return v;
  }
  function additive(): number {
    let v = multiplicative();
    while (isOp('+') || isOp('-')) {
      const op = tokens[i++]!.value;
      const r = multiplicative();
      v = op === '+' ? v + r : v - r;
    }
    return v;
  }

  const value = additive();
  if (i !== tokens.length) throw new Error(`unexpected '${String(tokens[i]!.value)}'`);
  if (!Number.isFinite(value)) throw new Error('expression does not evaluate to a finite number');
  return Math.max(0, value);
}
