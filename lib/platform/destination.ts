import { BlockList, isIP } from 'node:net';

/**
 * Which webhook destinations the processor may connect to. Workflows are configured by each
 * organization, so by default an address that is not on the public internet is refused: loopback,
 * private, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254), unique-local,
 * multicast, broadcast, documentation and other special-purpose ranges, IPv4 and IPv6, including
 * IPv4 addresses carried inside IPv6 (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16).
 * Ranges from the IANA special-purpose address registries
 * (https://www.iana.org/assignments/iana-ipv4-special-registry,
 * https://www.iana.org/assignments/iana-ipv6-special-registry), the same class of destinations that
 * tenant-configured webhook senders (Svix, Stripe, GitHub) refuse.
 *
 * The check runs on the address actually connected to (lib/jobs/guarded-fetch.ts resolves through
 * `checkedLookup`), so a host name whose DNS answer is private cannot slip past it.
 * `WEBHOOK_ALLOW_HOSTS` lists exceptions (for development and internal receivers).
 */

/** One parsed `WEBHOOK_ALLOW_HOSTS` entry. */
export type AllowEntry = { kind: 'host'; host: string } | { kind: 'range'; address: string; prefix: number; family: 'ipv4' | 'ipv6'; text: string };

/** The parsed `WEBHOOK_ALLOW_HOSTS`: host names compared case-insensitively, and address ranges. */
export interface AllowList {
  hosts: string[];
  ranges: Extract<AllowEntry, { kind: 'range' }>[];
}

export const EMPTY_ALLOW_LIST: AllowList = { hosts: [], ranges: [] };

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/;

/**
 * Parse one entry: a host name (`hooks.internal`, `localhost`), an address (`10.0.0.5`, `::1`) or a
 * CIDR range (`127.0.0.0/8`, `fd00::/8`). Returns the entry, or a message saying what is wrong.
 */
export function parseAllowEntry(raw: string): AllowEntry | string {
  const text = raw.trim().toLowerCase();
  const slash = text.indexOf('/');
  const addressPart = unbracket(slash >= 0 ? text.slice(0, slash) : text);
  const family = isIP(addressPart);
  if (family) {
    const max = family === 4 ? 32 : 128;
    const prefix = slash >= 0 ? Number(text.slice(slash + 1)) : max;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && !/^\d+$/.test(text.slice(slash + 1)))) {
      return `"${raw}": the prefix length must be 0..${max}`;
    }
    return { kind: 'range', address: addressPart, prefix, family: family === 4 ? 'ipv4' : 'ipv6', text };
  }
  if (slash >= 0) return `"${raw}": "${addressPart}" is not an IP address (a range is <address>/<prefix>)`;
  const host = text.endsWith('.') ? text.slice(0, -1) : text;
  if (!HOST_NAME.test(host)) return `"${raw}" is neither a host name, an IP address nor a CIDR range`;
  return { kind: 'host', host };
}

/** Parse a comma-separated list; every bad entry is reported, not only the first. */
export function parseAllowList(value: string): { list: AllowList; problems: string[] } {
  const list: AllowList = { hosts: [], ranges: [] };
  const problems: string[] = [];
  for (const part of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const entry = parseAllowEntry(part);
    if (typeof entry === 'string') problems.push(entry);
    else if (entry.kind === 'host') list.hosts.push(entry.host);
    else list.ranges.push(entry);
  }
  return { list, problems };
}

/** A destination refused by policy; never retried (the same request would be refused again). */
export class DestinationRefusedError extends Error {
  override readonly name = 'DestinationRefusedError';
  readonly code = 'destination_refused';
}

const NON_PUBLIC: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', '"this network" (0.0.0.0/8)'],
  ['10.0.0.0', 8, 'ipv4', 'private (10.0.0.0/8)'],
  ['100.64.0.0', 10, 'ipv4', 'carrier-grade NAT (100.64.0.0/10)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback (127.0.0.0/8)'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (169.254.0.0/16, cloud metadata)'],
  ['172.16.0.0', 12, 'ipv4', 'private (172.16.0.0/12)'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments (192.0.0.0/24)'],
  ['192.0.2.0', 24, 'ipv4', 'documentation (192.0.2.0/24)'],
  ['192.88.99.0', 24, 'ipv4', '6to4 relay anycast (192.88.99.0/24)'],
  ['192.168.0.0', 16, 'ipv4', 'private (192.168.0.0/16)'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking (198.18.0.0/15)'],
  ['198.51.100.0', 24, 'ipv4', 'documentation (198.51.100.0/24)'],
  ['203.0.113.0', 24, 'ipv4', 'documentation (203.0.113.0/24)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast (224.0.0.0/4)'],
  ['240.0.0.0', 4, 'ipv4', 'reserved or broadcast (240.0.0.0/4)'],
  ['::', 128, 'ipv6', 'unspecified (::)'],
  ['::1', 128, 'ipv6', 'loopback (::1)'],
  ['::', 96, 'ipv6', 'IPv4-compatible (::/96)'],
  ['100::', 64, 'ipv6', 'discard-only (100::/64)'],
  ['2001::', 23, 'ipv6', 'IETF protocol assignments (2001::/23)'],
  ['2001:db8::', 32, 'ipv6', 'documentation (2001:db8::/32)'],
  ['fc00::', 7, 'ipv6', 'unique-local (fc00::/7)'],
  ['fe80::', 10, 'ipv6', 'link-local (fe80::/10)'],
  ['fec0::', 10, 'ipv6', 'site-local (fec0::/10)'],
  ['ff00::', 8, 'ipv6', 'multicast (ff00::/8)'],
];

const nonPublic = NON_PUBLIC.map(([address, prefix, family, label]) => {
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  return { list, label };
});

/**
 * Why an address is not public, or null when it is. IPv4 addresses carried in IPv6 (mapped
 * ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address they carry.
 */
export function nonPublicReason(address: string): string | null {
  const bare = unbracket(address);
  const family = isIP(bare);
  if (family === 0) return `"${address}" is not an IP address`;
  const v4 = family === 6 ? embeddedIpv4(bare) : null;
  if (v4) {
    const inner = nonPublicReason(v4);
    return inner ? `${inner}, carried in IPv6 ${bare}` : null;
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { list, label } of nonPublic) if (list.check(bare, type)) return label;
  return null;
}

/** Whether the allow list admits a host name (as written in the URL) or an address. */
export function isAllowed(allow: AllowList, target: { host?: string; address?: string }): boolean {
  if (target.host !== undefined) {
    const host = target.host.toLowerCase().replace(/\.$/, '');
    if (allow.hosts.includes(host)) return true;
  }
  if (target.address !== undefined) {
    const bare = unbracket(target.address);
    const family = isIP(bare);
    if (!family) return false;
    const candidates = [bare, ...(family === 6 && embeddedIpv4(bare) ? [embeddedIpv4(bare)!] : [])];
    for (const r of allow.ranges) {
      const list = new BlockList();
      list.addSubnet(r.address, r.prefix, r.family);
      if (candidates.some((a) => list.check(a, isIP(a) === 4 ? 'ipv4' : 'ipv6'))) return true;
    }
  }
  return false;
}

/**
 * Throws DestinationRefusedError when `address` (resolved for `host`) may not be connected to:
 * not public and not allowed by name or range. The message names the host, the address and why.
 */
export function assertDestination(allow: AllowList, host: string, address: string): void {
  const reason = nonPublicReason(address);
  if (reason === null) return;
  if (isAllowed(allow, { host, address })) return;
  const where = unbracket(host) === unbracket(address) ? address : `${host} (resolves to ${address})`;
  throw new DestinationRefusedError(`destination ${where} is ${reason}; webhooks only go to public addresses unless WEBHOOK_ALLOW_HOSTS lists the host or range`);
}

function unbracket(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

/** The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 IPv6 address, or null. */
function embeddedIpv4(v6: string): string | null {
  const groups = expandIpv6(v6);
  if (!groups) return null;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (zeros(0, 5) && groups[5] === 0xffff) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!);
  return null;
}

/** The eight 16-bit groups of an IPv6 address (normalised by the WHATWG URL parser first). */
function expandIpv6(v6: string): number[] | null {
  let canonical: string;
  try {
    canonical = unbracket(new URL(`http://[${v6.split('%')[0]}]/`).hostname);
  } catch {
    return null;
  }
  const [head, tail] = canonical.includes('::') ? canonical.split('::') : [canonical, null];
  const parse = (s: string | null | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  if (tail === null) return h.length === 8 ? h : null;
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}
