// Where a webhook may connect. An operator must not be able to make the gateway post to the machine it runs on,
// the call centre's intranet or a cloud metadata service (SSRF). Every address a target's host resolves to is
// checked before any connection is made, and checked again inside the connection's own DNS lookup so that a name
// that answers differently the second time (DNS rebinding) still cannot reach a refused address.
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** What a channel may reach. */
export interface AddressPolicy {
  /** loopback, RFC 1918, unique-local and carrier-grade NAT addresses are allowed (an admin's explicit choice) */
  allowPrivate: boolean;
}

/** Resolve a host to every address it has (injectable: tests resolve without DNS). */
export type ResolveHost = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolve: ResolveHost = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

// ipaddr.js range names → what an operator reads on the timeline
const PRIVATE_RANGES: Record<string, string> = {
  loopback: 'a loopback address',
  private: 'a private (RFC 1918) address',
  uniqueLocal: 'a unique-local (private IPv6) address',
  carrierGradeNat: 'a carrier-grade NAT address',
};
const NEVER_RANGES: Record<string, string> = {
  linkLocal: 'a link-local address (where cloud metadata services answer)',
  unspecified: 'the unspecified address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
};

/**
 * Why `address` may not be connected to under `policy`, or null when it may. Only globally routable unicast
 * addresses pass by default; IPv4-mapped IPv6 is judged as the IPv4 address it carries, and translation prefixes
 * (6to4, Teredo, NAT64), documentation and reserved ranges are refused because they can hide any of the above.
 */
export function addressRefusal(address: string, policy: AddressPolicy): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(address);
  } catch {
    return `"${address}" is not an IP address`;
  }
  const range = parsed.range();
  const shown = parsed.toString();
  if (range === 'unicast') return null;
  if (NEVER_RANGES[range]) return `${shown} is ${NEVER_RANGES[range]}; webhooks never go there`;
  if (PRIVATE_RANGES[range]) {
    return policy.allowPrivate ? null : `${shown} is ${PRIVATE_RANGES[range]}; the channel is not allowed to post to private addresses (allowPrivate)`;
  }
  return `${shown} is in a reserved or special-purpose range (${range}); webhooks never go there`;
}

export type TargetCheck =
  | { ok: true; hostname: string; addresses: string[] }
  | { ok: false; reason: string; retryable: boolean };

/**
 * Check a webhook URL before anything is sent: scheme, no credentials in it, and every address its host resolves
 * to. An IP literal is judged as it is (no DNS). Nothing here opens a connection.
 */
export async function checkTarget(url: string, policy: AddressPolicy, resolve: ResolveHost = systemResolve): Promise<TargetCheck> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { ok: false, reason: 'refused: not a valid URL', retryable: false };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { ok: false, reason: `refused: ${u.protocol} is not http or https`, retryable: false };
  if (u.username || u.password) return { ok: false, reason: 'refused: credentials in the URL; use the channel secret', retryable: false };
  // URL keeps IPv6 literals in brackets
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  let addresses: string[];
  if (isIP(hostname)) addresses = [hostname];
  else {
    try {
      addresses = (await resolve(hostname)).map((a) => a.address);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // a name that does not resolve now may resolve later (the receiver's DNS is down): retried
      return { ok: false, reason: `could not resolve ${hostname}${code ? ` (${code})` : ''}`, retryable: true };
    }
    if (!addresses.length) return { ok: false, reason: `could not resolve ${hostname} (no address)`, retryable: true };
  }
  // one refused address refuses the host: otherwise a name with a public and a private answer would get through
  for (const a of addresses) {
    const why = addressRefusal(a, policy);
    if (why) return { ok: false, reason: `refused: ${hostname === a ? '' : `${hostname} resolves to `}${why}`, retryable: false };
  }
  return { ok: true, hostname, addresses };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net.connect / tls.connect that refuses what `addressRefusal` refuses, in the connection's own
 * resolution: the address connected to is always one that was checked.
 */
export function guardedLookup(policy: AddressPolicy, resolve: ResolveHost = systemResolve) {
  return (hostname: string, options: LookupOneOptions | LookupAllOptions | number, callback: LookupCallback): void => {
    const all = typeof options === 'object' && options !== null && (options as LookupAllOptions).all === true;
    resolve(hostname).then(
      (addresses) => {
        for (const a of addresses) {
          const why = addressRefusal(a.address, policy);
          if (why) {
            const err = Object.assign(new Error(`refused: ${hostname} resolves to ${why}`), { code: 'EADDRREFUSED_POLICY' });
            callback(err, '', undefined);
            return;
          }
        }
        if (!addresses.length) {
          callback(Object.assign(new Error(`could not resolve ${hostname} (no address)`), { code: 'ENOTFOUND' }), '', undefined);
        } else if (all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', undefined),
    );
  };
}
