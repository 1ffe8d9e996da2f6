/**
 * Whether a public webhook URL can be reached by a carrier: it must resolve
 * only to addresses on the public internet. Loopback, private, link-local,
 * carrier-grade NAT (also Tailscale's own addresses), unique-local and
 * unspecified addresses are refused, naming the range.
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

const RANGES: ReadonlyArray<readonly [string, number, "ipv4" | "ipv6", string]> = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "carrier-grade NAT / tailnet"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "IETF protocol assignments"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["224.0.0.0", 3, "ipv4", "multicast or reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["fc00::", 7, "ipv6", "unique-local"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["ff00::", 8, "ipv6", "multicast"],
];

const LISTS = RANGES.map(([net, prefix, family, name]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, family);
  return { list, family, name, cidr: `${net}/${prefix}` };
});

/** The non-public range `address` falls in, or undefined for a public address. */
export function nonPublicRange(address: string): string | undefined {
  // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is judged as IPv4.
  const mapped = address.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i)?.[1];
  const ip = mapped ?? address;
  const family = isIP(ip) === 6 ? "ipv6" : "ipv4";
  const hit = LISTS.find((l) => l.family === family && l.list.check(ip, family));
  return hit ? `${hit.name} ${hit.cidr}` : undefined;
}

export type Resolve = (host: string) => Promise<string[]>;

const resolveAll: Resolve = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export type UrlVerdict = { ok: true; addresses: string[] } | { ok: false; reason: string };

/** Resolves the URL's host; refuses it when any address is not public or it does not resolve. */
export async function checkPublicUrl(url: string, resolve: Resolve = resolveAll): Promise<UrlVerdict> {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return { ok: false, reason: `${url} is not a URL` };
  }
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await resolve(host);
  } catch (err) {
    return { ok: false, reason: `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  if (addresses.length === 0) return { ok: false, reason: `${host} does not resolve` };
  for (const address of addresses) {
    const range = nonPublicRange(address);
    if (range) return { ok: false, reason: `${host} resolves to ${address} (${range}): carriers cannot reach it` };
  }
  return { ok: true, addresses };
}
