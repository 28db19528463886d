import type { z } from 'zod';
import { AppError, BadRequestError } from '../platform/errors.js';

/** Request bodies: bounded raw reads (the raw text is what QStash signs), JSON content type, zod parsing into 400s. */

/** Largest request body any route accepts (bytes). Operator and QStash bodies are tiny. */
export const MAX_BODY_BYTES = 64 * 1024;

export class PayloadTooLargeError extends AppError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limit: number) {
    super('payload_too_large', `request body exceeds ${limit} bytes`);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  override readonly name = 'UnsupportedMediaTypeError';
  constructor(got: string | null) {
    super('unsupported_media_type', `content-type must be application/json, got ${got ? JSON.stringify(got) : 'none'}`);
  }
}

/**
 * Read the raw body as text, refusing more than `maxBytes` (413) whether or not the client sent a
 * Content-Length. The raw text is what QStash signature verification hashes.
 */
export async function readRawBody(request: Request, maxBytes = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw new PayloadTooLargeError(maxBytes);
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new PayloadTooLargeError(maxBytes);
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
}

/** Refuse a body that is not JSON by its declared media type (415). */
export function requireJsonContentType(request: Request): void {
  const type = request.headers.get('content-type');
  const media = type?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (media !== 'application/json' && !/^application\/[\w.+-]+\+json$/.test(media)) {
    throw new UnsupportedMediaTypeError(type);
  }
}

/** Parse raw JSON text against a schema; every problem is named in one 400. */
export function parseJsonText<S extends z.ZodType>(text: string, schema: S): z.output<S> {
  if (text.trim() === '') throw new BadRequestError('request body is empty; a JSON object is required');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BadRequestError(`malformed JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    const text = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    throw new BadRequestError(`invalid request body: ${text}`, issues);
  }
  return parsed.data;
}

/** Read and parse a JSON request body: size limit, media type, syntax, schema — in that order. */
export async function readJson<S extends z.ZodType>(request: Request, schema: S, maxBytes = MAX_BODY_BYTES): Promise<z.output<S>> {
  const text = await readRawBody(request, maxBytes);
  requireJsonContentType(request);
  return parseJsonText(text, schema);
}
