/**
 * Asterisk over ARI. A call is one SIP channel in our Stasis app, bridged
 * with an externalMedia channel whose RTP comes to our own UDP socket.
 *
 * Asterisk facts this relies on (seen on Asterisk 22):
 * - the externalMedia channel enters our Stasis app too: it is recognised by
 *   the id we give it and added to the bridge only after its StasisStart;
 * - the address to send RTP to is only in the POST response's channelvars
 *   (UNICASTRTP_LOCAL_ADDRESS / UNICASTRTP_LOCAL_PORT);
 * - DTMF never reaches the RTP stream, only ChannelDtmfReceived events;
 * - StasisStart is not replayed after a reconnect, so the channel list is
 *   reconciled instead.
 * Every path (hang-up on either side, errors, Asterisk going away) removes
 * the bridge and the externalMedia channel.
 */
import { randomUUID } from "node:crypto";
import { VoiceCallError } from "../../errors.js";
import type { PacedTransport } from "../../audio/transport.js";
import { MediaCarrier, type MediaCall, type MediaCarrierOptions } from "../media-carrier.js";
import { holdOn } from "../../audio/hold.js";
import { isNarrowband, rtpMedia, websocketMedia } from "./media.js";
import type { PlaceCallRequest, ProviderCapabilities, RemoteCallStatus, SetupFinding, TerminalState, TransferRequest, TransferResult } from "../types.js";
import { AriClient, AriError, ignoreGone, type AriChannel, type AriEvent } from "./ari.js";
import { AsteriskTransfers, transferOutcome } from "./transfer.js";
import { briefPerson } from "../warm-transfer.js";
import { nodeIdOf, storeSettings } from "../../config/load.js";
import { clearLeftBehind, InboundDispatcher, nodeApp } from "./cluster.js";
import { ariServers, type NamedAriServer } from "./servers.js";
import { AsteriskLeftovers } from "./leftovers.js";

export interface AsteriskProviderOptions extends MediaCarrierOptions {
  /** The Asterisk this provider talks to (one entry of asterisk.ari); default the first one. */
  server?: NamedAriServer;
  /** How long calls survive a lost ARI connection before they end. */
  reconnectGraceMs?: number;
}

interface AstCall extends MediaCall {
  hangupRequested: boolean;
  /** Q.850 cause from ChannelHangupRequest, for when StasisEnd ends the call. */
  hangupCause?: number;
  bridgeId?: string;
  mediaId?: string;
  transport?: PacedTransport;
  mediaReady?: (ok: boolean) => void;
}

export class AsteriskProvider extends MediaCarrier<AstCall> {
  readonly id = "asterisk" as const;
  readonly capabilities: ProviderCapabilities = { inbound: true, dtmfOut: true, e164Only: false, turnTokens: true, warmTransfer: true };
  readonly ari: AriClient;
  /** externalMedia channel id -> call id, until its StasisStart. */
  private readonly mediaOwners = new Map<string, string>();
  /** Our calls up from before a restart, and what a crash left behind. */
  private readonly leftovers: AsteriskLeftovers;
  private graceTimer: NodeJS.Timeout | null = null;
  /** Started before Asterisk answered: connecting in the background. */
  private waitingForAsterisk = false;
  /** Ids of what we create carry the app name (leftovers.ts: what the clean-up after a reconnect may touch). */
  private readonly prefix: { call: string; media: string; bridge: string };
  /** Blind transfers: legs being dialled, and callers handed over to a person. */
  private readonly transfers: AsteriskTransfers;
  /** On a shared store: the entry app, while this instance hands out the PBX's callers (cluster.ts). */
  private readonly dispatcher?: InboundDispatcher;
  /** On a shared store: what any instance of the cluster names its bridges and media channels. */
  private readonly clusterPrefixes?: { bridge: string; media: string };
  /** Channels being moved into our app (a call taken over), until their StasisStart. */
  private readonly arriving = new Map<string, () => void>();
  private readonly server: NamedAriServer;

  constructor(protected override readonly options: AsteriskProviderOptions) {
    super(options, "asterisk");
    const ari = (this.server = options.server ?? ariServers(options.config)[0]!);
    // On a shared store each instance has an app of its own, and the configured one is the cluster's entry.
    const clustered = storeSettings(options.config).kind === "postgres";
    const app = clustered ? nodeApp(ari.app, nodeIdOf(options.config)) : ari.app;
    this.prefix = { call: `vc-${app}-`, media: `vcm-${app}-`, bridge: `vcb-${app}-` };
    this.ari = new AriClient({ url: ari.url, username: ari.username, password: ari.password ?? "", app, logger: this.log });
    if (clustered) {
      this.dispatcher = new InboundDispatcher({ url: ari.url, username: ari.username, password: ari.password ?? "", entryApp: ari.app, ownApp: app, log: this.log });
      this.clusterPrefixes = { bridge: `vcb-${ari.app}-`, media: `vcm-${ari.app}-` };
    }
    this.transfers = new AsteriskTransfers(this.ari, `vcx-${app}-`, this.log);
    this.leftovers = new AsteriskLeftovers(this.ari, this.prefix, this.transfers, clustered, (work, what) => this.background(work, what));
    this.ari.onEvent((e) => this.onAriEvent(e));
    this.ari.onConnection((s) => this.onConnection(s.connected, s.reconnected));
  }

  /** ARI's events connection is up (an Asterisk pool places calls only on connected ones). */
  get ariConnected(): boolean {
    return this.ari.isConnected;
  }

  /** Calls on this Asterisk not ended yet. */
  get liveCalls(): number {
    let n = 0;
    for (const call of this.calls.values()) if (!call.ended) n++;
    return n;
  }

  protected async open(): Promise<void> {
    const { url } = this.server;
    try {
      await this.ari.connect();
    } catch (err) {
      const status = err instanceof AriError ? err.status : 0;
      // Refused credentials, or a URL that is not ARI, will not mend themselves: the start fails, naming them.
      if (status === 401 || status === 403 || status === 404) throw new VoiceCallError("UNAVAILABLE", `cannot connect to Asterisk ARI at ${url}: ${(err as Error).message}`);
      // Asterisk not up yet (a PBX that starts after us, or restarts): serve meanwhile, and connect when it answers.
      this.log.warn({ url, reason: (err as Error).message }, "Asterisk ARI is not reachable yet; calls through Asterisk fail until it answers, retrying in the background");
      this.waitingForAsterisk = true;
      this.ari.connectInBackground();
      return;
    }
    await this.connected();
  }

  /** What follows the first connection to Asterisk: calls to take back, our leftovers removed, speech readied. */
  private async connected(): Promise<void> {
    // Our calls still up from before a restart wait to be taken back (readopt); the rest are hung up after a while.
    await this.leftovers.collect();
    await this.resync();
    this.warmSpeech(this.options.config.asterisk.media.codec === "slin16" ? 16000 : 8000);
  }

  async check(): Promise<SetupFinding[]> {
    const { url } = this.server;
    try {
      const info = (await this.ari.info()) as { system?: { version?: string } } | undefined;
      return [{ check: "asterisk-ari", status: "ok", detail: `ARI at ${url} answers (Asterisk ${info?.system?.version ?? "version unknown"})` }];
    } catch (err) {
      const status = (err as { status?: number }).status;
      return [{
        check: "asterisk-ari",
        status: "fail",
        detail: (err as Error).message,
        fix: status === 401 ? "check asterisk.ari.username and asterisk.ari.password (ari.conf)" : "start Asterisk with ARI enabled (http.conf, ari.conf), or fix asterisk.ari.url; npm start runs a local PBX lab",
      }];
    }
  }

  /**
   * Hangs up every call and removes what we made for it; with `handOver`,
   * leaves the callers' channels in our app (and their bridges) for the
   * instance that takes them over: it moves each into its own app and clears
   * what is left, as after a crash, without the caller losing the call.
   */
  protected async close(handOver: boolean): Promise<void> {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.dispatcher?.close();
    if (handOver) {
      for (const call of this.calls.values()) {
        call.ended = true;
        call.transport?.close();
      }
      await Promise.all([...this.calls.values()].map((c) => this.endMedia(c)));
    } else {
      await Promise.all([...this.calls.values()].map((c) => this.teardown(c, true)));
    }
    this.ari.close();
  }

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const { asterisk, ringTimeoutMs, fromNumber } = this.options.config;
    const id = `${this.prefix.call}${randomUUID()}`;
    const call: AstCall = { id, answered: false, ended: false, hangupRequested: false };
    this.calls.set(id, call);
    const endpoint = asterisk.dialTemplate.replaceAll("{to}", request.to);
    try {
      await this.ari.channels.originate({ endpoint, channelId: id, appArgs: "outbound", callerId: fromNumber, timeoutSec: Math.ceil(ringTimeoutMs / 1000) });
    } catch (err) {
      this.calls.delete(id);
      // Asterisk's whole answer when it cannot make the channel at all: say what usually causes it.
      if (err instanceof AriError && err.status === 500 && /Allocation failed/.test(err.message)) {
        throw new AriError(500, `Asterisk could not dial ${endpoint} (no such endpoint, or it has no registered contact: is the phone registered? see asterisk.dialTemplate)`);
      }
      throw err;
    }
    return { providerCallId: id };
  }

  async answer(providerCallId: string): Promise<void> {
    const call = this.live(providerCallId);
    // The audio path first, then the answer: answered first, the caller's first words fell into the gap
    // while the bridge and the media channel were made (all of a 2 s greeting on a busy machine).
    await this.attachMedia(call, { announce: true, answer: true });
  }

  async reject(providerCallId: string, _reason: string): Promise<void> {
    const call = this.live(providerCallId);
    call.hangupRequested = true;
    await ignoreGone(this.ari.channels.hangup(call.id, "rejected"));
  }

  async hangup(providerCallId: string): Promise<void> {
    const call = this.calls.get(providerCallId);
    if (!call || call.ended) return;
    call.hangupRequested = true;
    await ignoreGone(this.ari.channels.hangup(call.id, "normal"));
    await this.teardown(call, false);
  }

  /**
   * Blind transfer: the person is dialled (asterisk.dialTemplate) into the
   * app; once they answer they join the caller's bridge and our audio leaves
   * it. Not answered: the caller is still with us, and the cause says why.
   */
  async transfer(providerCallId: string, request: TransferRequest): Promise<TransferResult> {
    const call = this.live(providerCallId);
    if (!call.bridgeId || !call.answered || !call.media) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} has no audio bridge yet`);
    // Warm: the caller hears the hold chime while the person is dialled and briefed.
    const hold = request.mode === "warm" ? holdOn(call.media.transport) : undefined;
    try {
      const endpoint = this.options.config.asterisk.dialTemplate.replaceAll("{to}", request.to);
      const dial = await this.transfers.dial(endpoint, { callerId: this.options.config.fromNumber, timeoutSec: Math.ceil(request.ringTimeoutMs / 1000) });
      if (!dial.answered) return { outcome: transferOutcome(dial.cause), reason: dial.cause ? `${dial.causeText} (cause ${dial.cause})` : dial.causeText, legId: dial.legId };
      if (call.ended) {
        await ignoreGone(this.ari.channels.hangup(dial.legId, "normal")).catch(() => undefined);
        return { outcome: "failed", reason: "the caller hung up while the person answered", legId: dial.legId };
      }
      if (request.mode === "warm") {
        const refused = await this.brief(dial.legId, request.briefing ?? "");
        if (refused) return { ...refused, legId: dial.legId };
        if (call.ended) {
          await ignoreGone(this.ari.channels.hangup(dial.legId, "normal")).catch(() => undefined);
          return { outcome: "failed", reason: "the caller hung up while the person was told about the call", legId: dial.legId };
        }
      }
      hold?.stop();
      await this.ari.bridges.addChannel(call.bridgeId, dial.legId);
      await this.transfers.handOver(call.id, dial.legId, call.bridgeId, request.record);
      await this.leave(call);
      return { outcome: "connected", legId: dial.legId };
    } finally {
      hold?.stop();
    }
  }

  /** A warm transfer's person, alone with us, briefed (asterisk/transfer.ts): undefined once they accept, else why not. */
  private brief(legId: string, briefing: string): Promise<Omit<TransferResult, "legId"> | undefined> {
    return briefPerson(
      {
        open: async (listener) => {
          const person: AstCall = { id: legId, answered: true, ended: false, hangupRequested: false, listener };
          this.calls.set(legId, person);
          await this.attachMedia(person, { announce: false });
          return person;
        },
        detectMachine: (options) => this.detectMachine(legId, options),
        hangUp: async (person) => {
          (person as AstCall).hangupRequested = true;
          await ignoreGone(this.ari.channels.hangup(legId, "normal")).catch(() => undefined);
          await this.teardown(person as AstCall, false);
        },
        release: (person) => this.teardown(person as AstCall, false),
      },
      briefing,
    );
  }

  /** Our part of a handed-over call goes (the pipeline, the externalMedia channel); the caller, the person and the bridge stay. */
  private async leave(call: AstCall): Promise<void> {
    call.ended = true;
    call.transport?.close();
    await this.endMedia(call);
    if (call.mediaId) {
      this.mediaOwners.delete(call.mediaId);
      await ignoreGone(this.ari.channels.hangup(call.mediaId)).catch((err) => this.log.warn({ callId: call.id, err: String(err) }, "cleanup step failed"));
    }
    this.forgetLater(call);
  }

  /**
   * Keys as RFC 4733 events through ARI. A `w` (0.5 s pause) is waited out
   * here, between ARI requests: given to ARI on our bridged channel, a
   * sequence with `w` held up the opening message queued behind it (it had
   * not played 15 s later; found by the conformance suite).
   */
  async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    const id = this.live(providerCallId).id;
    for (const part of digits.split(/(w+)/)) {
      if (part.startsWith("w")) await new Promise((r) => setTimeout(r, 500 * part.length));
      else if (part) await this.ari.channels.sendDtmf(id, part, { between: 100, duration: 100 });
    }
  }

  async getCallStatus(providerCallId: string): Promise<RemoteCallStatus> {
    try {
      await this.ari.channels.get(providerCallId);
      return { status: "active" };
    } catch (err) {
      if (err instanceof AriError && err.status === 404) return { status: "ended", state: "completed", reason: "the channel no longer exists in Asterisk" };
      return { status: "unknown", reason: (err as Error).message };
    }
  }

  async readopt(providerCallId: string, options: { fromNode?: string } = {}): Promise<{ ok: true } | { ok: false; reason: string }> {
    this.leftovers.take(providerCallId);
    if (this.calls.has(providerCallId)) return { ok: true };
    let channel: AriChannel;
    try {
      channel = await this.ari.channels.get(providerCallId);
    } catch (err) {
      return { ok: false, reason: err instanceof AriError && err.status === 404 ? "the channel no longer exists in Asterisk" : (err as Error).message };
    }
    if (channel.state !== "Up") return { ok: false, reason: `the channel is ${channel.state}, not up` };
    const call: AstCall = { id: providerCallId, answered: true, ended: false, hangupRequested: false };
    this.calls.set(providerCallId, call);
    if (options.fromNode && this.clusterPrefixes) {
      // Another instance's call: into our app first (its events come to us), and its old bridge and media go.
      try {
        await this.moveHere(providerCallId);
        await clearLeftBehind(this.ari, providerCallId, this.clusterPrefixes);
      } catch (err) {
        this.calls.delete(providerCallId);
        return { ok: false, reason: `it could not be moved to this instance: ${(err as Error).message}` };
      }
    }
    try {
      // A new bridge and media channel: the old ones went with the previous process.
      await this.attachMedia(call, { announce: false });
    } catch (err) {
      // Not left up and silent: the caller hears the line end.
      await ignoreGone(this.ari.channels.hangup(providerCallId)).catch(() => undefined);
      return { ok: false, reason: `its audio could not be re-attached: ${(err as Error).message}` };
    }
    this.log.info({ callId: providerCallId, ...options }, options.fromNode ? "took over a call of an instance that stopped" : "took back a call that was up before the restart");
    return { ok: true };
  }

  dispatchInbound(pick: (() => Promise<string | undefined>) | null): void {
    this.dispatcher?.set(pick);
  }

  /** Moves a channel into our app and waits (5 s at most) for it to arrive. */
  private async moveHere(channelId: string): Promise<void> {
    const arrived = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      this.arriving.set(channelId, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      await this.ari.channels.move(channelId, this.ari.app);
      if (!(await arrived)) throw new Error("it never entered this instance's Stasis app");
    } finally {
      this.arriving.delete(channelId);
    }
  }

  // -------------------------------------------------------------- events

  private onAriEvent(e: AriEvent): void {
    switch (e.type) {
      case "StasisStart":
        return this.onStasisStart(e.channel, e.args);
      case "ChannelStateChange": {
        const call = this.calls.get(e.channel.id);
        if (call && !call.answered && (e.channel.state === "Ringing" || e.channel.state === "Ring")) this.emit(call, { type: "ringing" });
        return;
      }
      case "ChannelDtmfReceived": {
        const call = this.calls.get(e.channel.id);
        if (call && !call.ended) this.emit(call, { type: "dtmf", digits: e.digit });
        return;
      }
      case "ChannelHangupRequest": {
        const call = this.calls.get(e.channel.id);
        if (call && e.cause !== undefined) call.hangupCause = e.cause;
        return;
      }
      case "StasisEnd": {
        // After StasisEnd the app no longer hears of the channel (no
        // ChannelDestroyed), so leaving the app is the end of the call.
        const call = this.calls.get(e.channel.id);
        if (this.transfers.gone(e.channel.id, call?.hangupCause ?? 16, "left the Stasis app")) return;
        if (call) this.background(this.onCallGone(call, call.hangupCause ?? 16, "left the Stasis app"), "ending a call");
        return;
      }
      case "ChannelDestroyed": {
        if (this.transfers.gone(e.channel.id, e.cause, e.cause_txt)) return;
        const call = this.calls.get(e.channel.id);
        if (call) this.background(this.onCallGone(call, e.cause, e.cause_txt), "ending a call");
        const owner = this.mediaOwners.get(e.channel.id);
        if (owner) {
          this.mediaOwners.delete(e.channel.id);
          const c = this.calls.get(owner);
          c?.mediaReady?.(false);
        }
        return;
      }
      case "Dial":
        return;
      case "ApplicationReplaced":
        this.log.error({ app: this.ari.app }, "another connection took this instance's Stasis app: two instances with one asterisk.ari.app (or one cluster.nodeId)? This one no longer hears its calls");
        return;
    }
  }

  private onStasisStart(channel: AriChannel, args: string[]): void {
    // A call taken over from another instance, moved into our app (readopt).
    const arriving = this.arriving.get(channel.id);
    if (arriving) return arriving();
    // A person answering a transfer: their leg joins the caller's bridge (transfer()).
    if (this.transfers.entered(channel.id)) return;
    const owner = this.mediaOwners.get(channel.id);
    if (owner) {
      this.mediaOwners.delete(channel.id);
      this.calls.get(owner)?.mediaReady?.(true);
      return;
    }
    if (this.leftovers.ours(channel.id, "media")) return;
    const outbound = this.calls.get(channel.id);
    if (outbound) {
      // An originated channel enters the app when the far end answers.
      this.background(this.attachMedia(outbound).catch((err) => this.failCall(outbound, `media setup failed: ${(err as Error).message}`)), "ending a call");
      return;
    }
    const call: AstCall = { id: channel.id, answered: false, ended: false, hangupRequested: false };
    this.calls.set(channel.id, call);
    const to = args[0] ?? channel.dialplan?.exten ?? "";
    this.emit(call, { type: "inbound", from: channel.caller?.number || "anonymous", to });
  }

  /**
   * Bridge + externalMedia channel + our end of its audio; the call counts as answered once audio can flow.
   * `answer`: the channel is answered once all that is ready (an inbound call).
   */
  private async attachMedia(call: AstCall, options: { announce: boolean; answer?: boolean } = { announce: true }): Promise<void> {
    if (call.bridgeId || call.ended) return;
    const suffix = randomUUID();
    const bridgeId = `${this.prefix.bridge}${suffix}`;
    const mediaId = `${this.prefix.media}${suffix}`;
    call.bridgeId = bridgeId;
    call.mediaId = mediaId;
    try {
      await this.ari.bridges.create(bridgeId, `voicecall ${call.id}`);
      const ready = new Promise<boolean>((resolve) => (call.mediaReady = resolve));
      this.mediaOwners.set(mediaId, call.id);
      const { media } = this.options.config.asterisk;
      call.transport = media.transport === "websocket" ? await websocketMedia(this.ari, media, mediaId) : await rtpMedia(this.ari, media, mediaId, (t) => (call.transport = t));
      const timeout = setTimeout(() => call.mediaReady?.(false), 5000);
      const ok = await ready;
      clearTimeout(timeout);
      call.mediaReady = undefined;
      if (!ok) throw new Error("the externalMedia channel never entered the Stasis app");
      if (call.ended) return;
      // Asterisk 22 answers once both are in the bridge (its ChannelEnteredBridge events come 0-1 ms later).
      await this.ari.bridges.addChannel(bridgeId, `${call.id},${mediaId}`);
    } catch (err) {
      await this.teardown(call, false);
      throw err;
    }
    const transport = call.transport;
    await this.startMedia(call, transport, {
      narrowband: transport.sampleRate > 8000 ? await isNarrowband(this.ari, call.id, this.log) : true,
      inbandDtmf: this.options.config.asterisk.media.inbandDtmf,
    });
    if (options.answer) {
      try {
        await this.ari.channels.answer(call.id);
      } catch (err) {
        await this.teardown(call, false);
        throw err;
      }
    }
    call.answered = true;
    if (options.announce) this.emit(call, { type: "answered" });
  }

  private async onCallGone(call: AstCall, cause: number, causeText: string): Promise<void> {
    if (call.ended) return;
    const state = call.hangupRequested ? "hangup-bot" : endState(call.answered, cause);
    await this.endWith(call, state, `${causeText} (cause ${cause})`);
  }

  private async failCall(call: AstCall, reason: string): Promise<void> {
    if (call.ended) return;
    this.log.warn({ callId: call.id, reason }, "ending call");
    call.hangupRequested = true;
    await ignoreGone(this.ari.channels.hangup(call.id, "normal")).catch(() => undefined);
    await this.endWith(call, "error", reason);
  }

  /** Cleans up, then reports the end: the caller's last words go out before it. */
  private async endWith(call: AstCall, state: TerminalState, reason: string): Promise<void> {
    await this.teardown(call, false);
    this.reportEnd(call, state, reason);
  }

  /** Removes the bridge, the externalMedia channel and the RTP socket; idempotent. */
  private async teardown(call: AstCall, hangupCall: boolean): Promise<void> {
    if (call.ended) return;
    call.ended = true;
    call.mediaReady?.(false);
    call.transport?.close();
    // The caller's last words before the hang-up still belong in the transcript.
    await this.endMedia(call);
    const steps: Array<Promise<void>> = [];
    if (hangupCall) steps.push(ignoreGone(this.ari.channels.hangup(call.id, "normal")));
    if (call.mediaId) {
      this.mediaOwners.delete(call.mediaId);
      steps.push(ignoreGone(this.ari.channels.hangup(call.mediaId)));
    }
    if (call.bridgeId) steps.push(ignoreGone(this.ari.bridges.destroy(call.bridgeId)));
    const results = await Promise.allSettled(steps);
    for (const r of results) if (r.status === "rejected") this.log.warn({ callId: call.id, err: String(r.reason) }, "cleanup step failed");
    this.forgetLater(call);
  }

  // -------------------------------------------------------- reconnection

  private onConnection(connected: boolean, reconnected: boolean): void {
    if (this.waitingForAsterisk) {
      // Not connected once yet: nothing to lose, nothing to re-sync; only the first connection matters.
      if (!connected) return;
      this.waitingForAsterisk = false;
      this.log.info({ url: this.server.url }, "Asterisk ARI answers now");
      void this.connected().catch((err) => this.log.warn({ err: String(err) }, "setting up after connecting to Asterisk failed"));
      return;
    }
    if (!connected) {
      if (this.graceTimer) return;
      const grace = this.options.reconnectGraceMs ?? 15_000;
      this.log.warn({ graceMs: grace }, "lost the ARI connection; calls end if it is not back in time");
      this.graceTimer = setTimeout(() => {
        this.graceTimer = null;
        for (const call of this.calls.values()) this.background(this.failCall(call, "lost the connection to Asterisk"), "ending a call");
      }, grace);
      this.graceTimer.unref();
      return;
    }
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    if (reconnected) void this.resync().catch((err) => this.log.warn({ err: String(err) }, "re-sync after reconnect failed"));
  }

  /**
   * Reconciles with Asterisk's channel list: calls whose channel is gone end
   * with a reason; our own bridges and media channels that no call owns are
   * removed (left over from a crash of this service).
   */
  private async resync(): Promise<void> {
    const channels = await this.ari.channels.list();
    const alive = new Set(channels.map((c) => c.id));
    for (const call of [...this.calls.values()]) {
      if (call.ended || alive.has(call.id)) continue;
      await this.endWith(call, "error", "the channel vanished while Asterisk was unreachable (restarted?)");
    }
    const calls = [...this.calls.values()];
    const defined = (ids: Array<string | undefined>) => new Set(ids.filter((id): id is string => id !== undefined));
    await this.leftovers.sweep(channels, { calls: new Set(this.calls.keys()), media: defined(calls.map((c) => c.mediaId)), bridges: defined(calls.map((c) => c.bridgeId)) });
  }

}

/** Q.850 cause codes to how the call ended. */
function endState(answered: boolean, cause: number): TerminalState {
  if (answered) return "hangup-user";
  if (cause === 17) return "busy";
  if (cause === 18 || cause === 19) return "no-answer";
  return "failed";
}
