import { describe, expect, it } from 'vitest';
import { assertDestination, DestinationRefusedError, EMPTY_ALLOW_LIST, isAllowed, nonPublicReason, parseAllowList } from '../../lib/platform/destination.js';
import { loadConfig } from '../../lib/platform/config.js';

describe('destinations: which addresses a webhook may reach', () => {
  const refused: [string, RegExp][] = [
    ['127.0.0.1', /loopback/],
    ['10.0.0.5', /private \(10/],
    ['172.16.3.4', /private \(172\.16/],
    ['192.168.1.1', /private \(192\.168/],
    ['169.254.169.254', /link-local/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['0.0.0.0', /this network/],
    ['224.0.0.251', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fe80::1', /link-local/],
    ['fc00::1', /unique-local/],
    ['fd12:3456::1', /unique-local/],
    ['ff02::1', /multicast/],
    ['::ffff:127.0.0.1', /loopback.*carried in IPv6/],
    ['::ffff:a00:5', /private \(10.*carried in IPv6/],
    ['64:ff9b::a9fe:a9fe', /link-local.*carried in IPv6/],
    ['2002:c0a8:101::1', /private \(192\.168.*carried in IPv6/],
    ['2001:db8::1', /documentation/],
  ];
  it.each(refused)('%s is not public (%s)', (address, reason) => {
    expect(nonPublicReason(address)).toMatch(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])('%s is public', (address) => {
    expect(nonPublicReason(address)).toBeNull();
  });

  it('refuses with a reason that names the host, the address and what to set', () => {
    expect(() => assertDestination(EMPTY_ALLOW_LIST, 'internal.example', '10.0.0.5')).toThrow(DestinationRefusedError);
    expect(() => assertDestination(EMPTY_ALLOW_LIST, 'internal.example', '10.0.0.5')).toThrow(
      /destination internal\.example \(resolves to 10\.0\.0\.5\) is private \(10\.0\.0\.0\/8\).*WEBHOOK_ALLOW_HOSTS/,
    );
  });

  it('WEBHOOK_ALLOW_HOSTS admits listed host names, addresses and CIDR ranges, IPv4 and IPv6', () => {
    const { list, problems } = parseAllowList('127.0.0.0/8, ::1, hooks.internal, 10.1.2.3, fd00::/8');
    expect(problems).toEqual([]);
    expect(isAllowed(list, { address: '127.0.0.9' })).toBe(true);
    expect(isAllowed(list, { address: '::ffff:127.0.0.1' })).toBe(true);
    expect(isAllowed(list, { address: '::1' })).toBe(true);
    expect(isAllowed(list, { address: 'fd00::5' })).toBe(true);
    expect(isAllowed(list, { address: '10.1.2.3' })).toBe(true);
    expect(isAllowed(list, { address: '10.1.2.4' })).toBe(false);
    expect(isAllowed(list, { host: 'HOOKS.internal.' })).toBe(true);
    expect(() => assertDestination(list, 'hooks.internal', '10.9.9.9')).not.toThrow();
    expect(() => assertDestination(list, 'other.internal', '10.9.9.9')).toThrow(DestinationRefusedError);
  });

  it('config lists every bad WEBHOOK_ALLOW_HOSTS entry', () => {
    let message = '';
    try {
      loadConfig({ MONGODB_URI: 'mongodb://x', WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8,bad host,10.0.0.0/40,1.2.3/8' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('WEBHOOK_ALLOW_HOSTS');
    expect(message).toContain('"bad host" is neither a host name, an IP address nor a CIDR range');
    expect(message).toContain('"10.0.0.0/40": the prefix length must be 0..32');
    expect(message).toContain('"1.2.3/8": "1.2.3" is not an IP address');
    expect(loadConfig({ MONGODB_URI: 'mongodb://x' }).WEBHOOK_ALLOW_HOSTS).toBeUndefined();
  });
});
