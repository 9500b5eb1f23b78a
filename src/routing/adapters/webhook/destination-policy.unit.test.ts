import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import { destinationPolicy, isNonPublicAddress, parseAllowedHosts } from './destination-policy.js';

describe('isNonPublicAddress', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['100.64.0.1', 'CGNAT'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['64:ff9b::7f00:1', 'NAT64 of loopback'],
    ['64:ff9b::192.168.0.1', 'NAT64 of private'],
    ['2002:7f00:1::', '6to4 of loopback'],
    ['2002:a9fe:a9fe::1', '6to4 of link-local (cloud metadata)'],
    ['2002:c0a8:101:0:0:0:8.8.8.8', '6to4 of private, whatever its last 32 bits'],
    ['2002:a00:1::%eth0', '6to4 of private, with a zone'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'Teredo with a loopback client (127.0.0.1 inverted)'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo with a documentation client (RFC 4380 example)'],
    ['2001:0:a00:1:8000:63bf:f7f7:f7f7', 'Teredo with a private server'],
    ['not-an-address', 'not an IP at all'],
  ])('refuses %s (%s)', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  it.each([
    '93.184.215.14',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:808:808::1',
    '2002:808:808::127.0.0.1',
    '2001:0:4136:e378:8000:63bf:f7f7:f7f7',
  ])('accepts the public address %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(false);
  });
});

describe('parseAllowedHosts', () => {
  it('reads host names, addresses and CIDRs separated by commas or spaces', () => {
    expect(parseAllowedHosts(' hooks.internal, 10.1.0.0/16  ::1,127.0.0.0/8\nLocalHost ')).toEqual([
      'hooks.internal',
      '10.1.0.0/16',
      '::1',
      '127.0.0.0/8',
      'localhost',
    ]);
    expect(parseAllowedHosts(undefined)).toEqual([]);
    expect(parseAllowedHosts('')).toEqual([]);
  });

  it.each(['10.0.0.0/33', '::1/129', 'bad!host', 'http://x', '10.0.0.0/8/8', 'hooks.internal/24', '-x-'])('refuses %s', (text) => {
    expect(() => parseAllowedHosts(text)).toThrow(ValidationError);
  });
});

describe('destinationPolicy', () => {
  it('refuses non-public addresses, naming the address and the host', () => {
    const refusal = destinationPolicy([]).refusal('hooks.example.com', '10.0.0.7');

    expect(refusal).toContain('10.0.0.7');
    expect(refusal).toContain('hooks.example.com');
    expect(destinationPolicy([]).refusal('hooks.example.com', '93.184.215.14')).toBeUndefined();
  });

  it('lets allowed CIDRs and addresses through, and only them', () => {
    const policy = destinationPolicy(['127.0.0.0/8', '::1', '10.1.0.0/16']);

    expect(policy.refusal('localhost', '127.0.0.1')).toBeUndefined();
    expect(policy.refusal('[::1]', '::1')).toBeUndefined();
    expect(policy.refusal('a', '::ffff:127.0.0.1')).toBeUndefined();
    expect(policy.refusal('a', '10.1.200.3')).toBeUndefined();
    expect(policy.refusal('a', '10.2.0.1')).toBeDefined();
    expect(policy.refusal('a', '169.254.169.254')).toBeDefined();
  });

  it('lets an allowed host name resolve anywhere', () => {
    const policy = destinationPolicy(['Hooks.Internal']);

    expect(policy.allowsHostname('hooks.internal.')).toBe(true);
    expect(policy.refusal('hooks.internal', '10.9.8.7')).toBeUndefined();
    expect(policy.refusal('other.internal', '10.9.8.7')).toBeDefined();
  });
});
