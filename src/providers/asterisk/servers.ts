/**
 * Several Asterisks (asterisk.ari as a list): one provider per Asterisk, and
 * a pool in front that is the "asterisk" carrier. Inbound calls reach
 * whichever Asterisk Kamailio (or the trunk) sent them to; each provider hears
 * its own. Outbound calls go to the connected Asterisk with the fewest calls.
 *
 * A call's id names its Asterisk (`<name>/<channel id>`): channel ids are made
 * by each Asterisk on its own and two can be alike, and a call taken back
 * after a restart (or over from another instance) must be asked of the
 * Asterisk it is on. An id without a known name is the first Asterisk's (a
 * call stored while the config had one Asterisk).
 */
import type { AriServerConfig, VoiceCallConfig } from "../../config/schema.js";
import { VoiceCallError } from "../../errors.js";
import type { AmdVerdict } from "../../audio/amd.js";
import type {
  CallProvider,
  ListenOptions,
  PlaceCallRequest,
  ProviderCapabilities,
  ProviderEventSink,
  RecordingRequest,
  RemoteCallStatus,
  SetupFinding,
  SpeakOptions,
  SpeakOutcome,
  TransferRequest,
  TransferResult,
} from "../types.js";

export type NamedAriServer = AriServerConfig & { name: string };

/** The Asterisks the config names, each with its name (ast1, ast2, … where none is given). */
export function ariServers(config: VoiceCallConfig): NamedAriServer[] {
  const { ari } = config.asterisk;
  const list = Array.isArray(ari) ? ari : [ari];
  return list.map((server, i) => ({ ...server, name: server.name ?? `ast${i + 1}` }));
}

/** What the pool asks of each Asterisk's provider beyond the carrier contract. */
export interface PoolMember extends CallProvider {
  /** ARI's events connection is up. */
  readonly ariConnected: boolean;
  /** Calls on this Asterisk not ended yet. */
  readonly liveCalls: number;
}

export class AsteriskPool implements CallProvider {
  readonly id = "asterisk" as const;
  readonly capabilities: ProviderCapabilities;
  private readonly byName: Map<string, PoolMember>;

  constructor(private readonly members: ReadonlyArray<{ name: string; provider: PoolMember }>) {
    if (members.length === 0) throw new Error("an Asterisk pool needs at least one Asterisk");
    this.capabilities = members[0]!.provider.capabilities;
    this.byName = new Map(members.map((m) => [m.name, m.provider]));
  }

  async start(sink: ProviderEventSink): Promise<void> {
    await Promise.all(this.members.map(({ name, provider }) => provider.start((e) => sink({ ...e, providerCallId: `${name}/${e.providerCallId}` }))));
  }

  async stop(options?: { handOver?: boolean }): Promise<void> {
    await Promise.all(this.members.map((m) => m.provider.stop(options)));
  }

  /** The connected Asterisk with the fewest calls (ties: list order); none connected: the first, which says why it cannot. */
  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const ranked = [...this.members].sort((a, b) => Number(b.provider.ariConnected) - Number(a.provider.ariConnected) || a.provider.liveCalls - b.provider.liveCalls);
    const { name, provider } = ranked[0]!;
    const { providerCallId } = await provider.placeCall(request);
    return { providerCallId: `${name}/${providerCallId}` };
  }

  async answer(id: string): Promise<void> {
    return this.on(id, (p, local) => p.answer(local));
  }
  async reject(id: string, reason: string): Promise<void> {
    return this.on(id, (p, local) => p.reject(local, reason));
  }
  async hangup(id: string): Promise<void> {
    return this.on(id, (p, local) => p.hangup(local));
  }
  async transfer(id: string, request: TransferRequest): Promise<TransferResult> {
    return this.on(id, (p, local) => p.transfer!(local, request));
  }
  record(id: string, request: RecordingRequest): void {
    this.on(id, (p, local) => p.record!(local, request));
  }
  async detectMachine(id: string, options: { timeoutMs: number; awaitBeepMs?: number }): Promise<AmdVerdict> {
    return this.on(id, (p, local) => p.detectMachine!(local, options));
  }
  async speak(id: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    return this.on(id, (p, local) => p.speak(local, text, options));
  }
  async listen(id: string, turnToken: string, options?: ListenOptions): Promise<void> {
    return this.on(id, (p, local) => p.listen(local, turnToken, options));
  }
  async sendDtmf(id: string, digits: string): Promise<void> {
    return this.on(id, (p, local) => p.sendDtmf(local, digits));
  }
  async getCallStatus(id: string): Promise<RemoteCallStatus> {
    return this.on(id, (p, local) => p.getCallStatus(local));
  }
  async readopt(id: string, options?: { fromNode?: string }): Promise<{ ok: true } | { ok: false; reason: string }> {
    return this.on(id, (p, local) => p.readopt!(local, options));
  }

  dispatchInbound(pick: (() => Promise<string | undefined>) | null): void {
    for (const m of this.members) m.provider.dispatchInbound?.(pick);
  }

  async check(): Promise<SetupFinding[]> {
    const found = await Promise.all(this.members.map(async ({ provider }) => (await provider.check?.()) ?? []));
    return found.flatMap((list, i) => list.map((f) => ({ ...f, detail: `${this.members[i]!.name}: ${f.detail}` })));
  }

  /** The provider a call id names, and the id its Asterisk knows. */
  private on<T>(id: string, fn: (provider: PoolMember, local: string) => T): T {
    const slash = id.indexOf("/");
    const named = slash > 0 ? this.byName.get(id.slice(0, slash)) : undefined;
    if (named) return fn(named, id.slice(slash + 1));
    if (slash > 0) throw new VoiceCallError("NOT_FOUND", `call ${id} is on an Asterisk not in asterisk.ari (${id.slice(0, slash)})`);
    return fn(this.members[0]!.provider, id);
  }
}
