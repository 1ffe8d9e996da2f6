/**
 * The one schema for the whole configuration. Keys and meanings follow the
 * reference voice-call plugin's README; `asterisk`, `routing`, `control` and
 * `mock` are this project's additions. Defaults live here and nowhere else.
 */
import { z } from "zod";
import { SecretRefSchema } from "./secrets.js";

export const E164_PATTERN = /^\+[1-9]\d{1,14}$/;
export const E164 = z.string().regex(E164_PATTERN, "expected an E.164 number such as +15550001234");
/**
 * Our caller id: E.164 for cloud carriers (checked where one is in use), or a
 * PBX extension / caller id name for Asterisk, where callers are extensions.
 */
const CallerId = z
  .string()
  .regex(/^(\+[1-9]\d{1,14}|[A-Za-z0-9*#._-]{1,64})$/, "expected an E.164 number such as +15550001234, or a PBX extension or caller id (letters, digits, * # . _ -)");

export const PROVIDER_IDS = ["twilio", "telnyx", "plivo", "mock", "asterisk"] as const;
export const ProviderId = z.enum(PROVIDER_IDS);
export type ProviderId = z.infer<typeof ProviderId>;

export const CallMode = z.enum(["notify", "conversation"]);
export type CallMode = z.infer<typeof CallMode>;

/**
 * pairing: as allowlist for voice (callers in allowFrom are answered); the
 * gateway's pairing-code flow for unknown senders has no voice equivalent,
 * so other callers are refused with that reason.
 */
export const InboundPolicy = z.enum(["disabled", "allowlist", "pairing", "open"]);
export type InboundPolicy = z.infer<typeof InboundPolicy>;

/**
 * A secret, or a reference to one (a SecretRef object, or `${NAME}`): references are
 * resolved before the config is parsed (config/secrets.ts), so what comes out is the
 * value; one that reaches the schema unresolved is refused with that reason.
 */
const secretOf = (value: z.ZodString) =>
  z.union([value, SecretRefSchema]).pipe(z.string({ error: "a SecretRef that was not resolved (standalone only env references resolve)" }).pipe(value));
const secret = secretOf(z.string().min(1));
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

export const POSTGRES_URL = /^postgres(ql)?:\/\/[^\s]+$/;

const StoreConfig = z.strictObject({
  url: z.string().regex(POSTGRES_URL, "expected a PostgreSQL address: postgres://user@host:5432/database").describe("the PostgreSQL database (postgres://user@host:5432/database); a password here is never logged, but store.password or PGPASSWORD keeps it out of the file"),
  password: secret.optional().describe("the database password (else the url's, else PGPASSWORD)"),
  dir: z.string().min(1).optional().describe("folder for what stays on this machine: recordings, the control token, replay keys (default ~/.openclaw/voice-calls)"),
  poolSize: positiveInt.max(100).default(4).describe("connections to the database this instance keeps at most"),
  connectTimeoutMs: positiveInt.default(5000).describe("how long a connection attempt may take before the store counts as unavailable"),
});

const ClusterConfig = z.strictObject({
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, "expected 1-64 letters, digits, dots, dashes or underscores")
    .optional()
    .describe("this instance's name on a shared store: the calls it places and answers are its own, and it restores only those (default: the hostname)"),
  leaseMs: positiveInt
    .min(1000)
    .default(10_000)
    .describe("on a shared store: how long this instance's lease lasts without renewal (renewed every third of it); the live calls of an instance whose lease ran out are taken over by another"),
  address: z.url().optional().describe("where the other instances reach this one's control API (default: http://<serve.host>:<serve.port>)"),
  maxConcurrentCalls: positiveInt
    .optional()
    .describe("on a shared store: calls in progress across every instance (each instance also keeps its own maxConcurrentCalls); counted from the store, so instances taking calls in the same few milliseconds can each take the last place"),
  drainMs: z
    .number()
    .int()
    .min(0)
    .default(30_000)
    .describe("on SIGTERM or Ctrl-C: how long calls in progress may go on while new ones are refused (health answers 503); then, on a shared store, PBX calls still up are handed to another instance, other calls end; 0 stops at once"),
});

const TwilioConfig = z.strictObject({
  accountSid: secret.optional().describe("Twilio account SID (AC…); required when Twilio is used"),
  authToken: secret.optional().describe("Twilio auth token: signs webhooks and authenticates REST calls"),
  region: z.enum(["us1", "ie1", "au1"]).optional().describe("Twilio's REST region for non-US processing; the credentials must be from that region"),
});
const TelnyxConfig = z.strictObject({
  apiKey: secret.optional().describe("Telnyx API key (KEY…); required when Telnyx is used"),
  connectionId: secret.optional().describe("the Call Control application (connection) calls are placed on"),
  publicKey: secret.optional().describe("the base64 Ed25519 key from Mission Control that verifies webhooks; required unless skipSignatureVerification"),
});
const PlivoConfig = z.strictObject({
  authId: secret.optional().describe("Plivo auth id (MA…); required when Plivo is used"),
  authToken: secret.optional().describe("Plivo auth token: signs webhooks (V3) and authenticates REST calls"),
});

const ServeConfig = z.strictObject({
  port: z.number().int().min(0).max(65535).default(3334).describe("port of the HTTP server: control API, webhooks and media streams (0: any free port)"),
  bind: z.string().min(1).default("127.0.0.1").describe("address the HTTP server listens on"),
  path: z.string().startsWith("/", "must start with /").default("/voice/webhook").describe("path of the carriers' webhooks"),
});

const TunnelConfig = z.strictObject({
  provider: z.enum(["none", "ngrok", "tailscale-serve", "tailscale-funnel"]).default("none").describe("a tunnel opened at start so carriers reach the webhooks (publicUrl wins when set)"),
  ngrokAuthToken: secret.optional().describe("ngrok's authtoken, for tunnel.provider ngrok"),
  ngrokDomain: z.string().min(1).optional().describe("a reserved ngrok domain for the tunnel"),
  allowNgrokFreeTierLoopbackBypass: z.boolean().default(false).describe("accepted for the reference plugin's configs; has no effect (signatures are always verified)"),
});

const TailscaleConfig = z
  .strictObject({
    mode: z.enum(["off", "serve", "funnel"]).default("off").describe("route the webhook and stream paths on the machine's tailnet name to this service: funnel (public) or serve (tailnet only)"),
    path: z.string().startsWith("/", "must start with /").default("/voice/webhook").describe("the public path Tailscale routes to the webhook"),
    port: z.number().int().min(1).max(65535).default(443).describe("external HTTPS port; Funnel accepts only 443, 8443 and 10000"),
  })
  .refine((t) => t.mode !== "funnel" || [443, 8443, 10000].includes(t.port), {
    message: "Tailscale Funnel accepts only ports 443, 8443 or 10000",
    path: ["port"],
  });

const WebhookSecurityConfig = z.strictObject({
  allowedHosts: z.array(z.string().min(1)).default([]).describe("without publicUrl: the only Host names a webhook's signed URL may be rebuilt from (empty: any)"),
  trustForwardingHeaders: z.boolean().default(false).describe("without publicUrl: rebuild the signed URL from X-Forwarded-Host/-Proto"),
  trustedProxyIPs: z.array(z.string().min(1)).default([]).describe("trust forwarding headers only from these addresses (empty: from anyone, when trustForwardingHeaders)"),
});

const OutboundConfig = z.strictObject({
  defaultMode: CallMode.default("notify").describe("notify: speak the message, then hang up; conversation: speak it, then listen"),
  notifyHangupDelaySec: nonNegativeInt.default(3).describe("seconds between a notify message and the hang-up"),
  amd: z
    .strictObject({
      enabled: z.boolean().default(false).describe("tell a person from an answering machine before the opening message (a call's own amd wins)"),
      onMachine: z.enum(["hangup", "message", "continue"]).default("continue").describe("a machine answered: hang up, leave `message` after its beep and hang up, or go on as with a person"),
      message: z.string().min(1).optional().describe("what onMachine message leaves (unset: the call's own message)"),
      timeoutMs: positiveInt.default(5000).describe("longest the opening message waits for the decision (then: unknown, and it is said)"),
      beepWaitMs: positiveInt.default(20_000).describe("longest onMachine message waits for the greeting to end"),
      detector: z
        .enum(["carrier", "bus"])
        .default("carrier")
        .describe("carrier: the carrier's own detection where it has one (Twilio's async AMD, Telnyx's answering_machine_detection, Plivo's machine_detection), ours elsewhere; bus: ours on our audio on every carrier"),
    })
    .prefault({})
    .describe("answering-machine detection on outbound calls: the carrier's own, or ours on our audio"),
});

const StreamingConfig = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe("cloud carriers stream call audio to this service (our speech engines); false: Twilio, Telnyx and Plivo speak and listen themselves (Asterisk always streams)"),
  provider: z.string().min(1).optional().describe("speech recognition engine: openai, deepgram or pocketsphinx; unset: the first configured in auto-select order (see docs/speech.md)"),
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).default({}).describe("each recognition engine's own options, by engine id (e.g. providers.openai.apiKey)"),
  streamPath: z.string().startsWith("/", "must start with /").default("/voice/stream").describe("path of the carriers' media WebSockets"),
  preStartTimeoutMs: positiveInt.default(5000).describe("a media socket that sends no valid start within this is closed"),
  maxPendingConnections: positiveInt.default(32).describe("media sockets open but not started yet; more are refused (429)"),
  maxPendingConnectionsPerIp: positiveInt.default(4).describe("the same, per source address"),
  maxConnections: positiveInt.default(128).describe("media sockets open at once; more are refused (429)"),
});

const TtsConfig = z.strictObject({
  provider: z
    .string()
    .min(1)
    .optional()
    .describe("text-to-speech engine where our engines speak: openai, elevenlabs, flite or espeak-ng; unset: openai or elevenlabs once a key is set, else flite"),
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).default({}).describe('each engine\'s own options, by engine id (e.g. providers.flite.voice "rms", "awb", "slt", "kal16")'),
});

const BargeInConfig = z.strictObject({
  enabled: z.boolean().default(true).describe("the caller talking over us stops our audio (never during an outbound call's opening message)"),
  energyThresholdDb: z.number().min(-90).max(0).default(-40).describe("quieter than this (dBFS) is never speech: room tone and line noise stay below it"),
  minSpeechMs: z.number().int().min(20).max(2000).default(120).describe("speech must last this long before it interrupts us"),
  vad: z.enum(["webrtc", "silero"]).default("webrtc").describe("the voice detector: WebRTC's VAD, or Silero v5 (needs onnxruntime-node and @ricky0123/vad-web installed)"),
  vadMode: z
    .union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)])
    .default(2)
    .describe("WebRTC VAD aggressiveness, 0 (lenient) to 3 (strict)"),
});

/**
 * When the caller's turn ends (src/voice/turn-taking.ts): by what they said,
 * within bounds, or after a fixed pause (silenceTimeoutMs, the reference's rule).
 */
const TurnTakingConfig = z
  .strictObject({
    mode: z
      .enum(["semantic", "silence"])
      .default("semantic")
      .describe("semantic: the recogniser's words pick the pause that ends the turn; silence: silenceTimeoutMs of silence ends every utterance"),
    completeMs: z.number().int().min(100).max(5000).default(200).describe("semantic: the pause that ends a turn that sounds complete (a sentence, a yes or no)"),
    openMs: z
      .number()
      .int()
      .min(100)
      .max(5000)
      .default(1000)
      .describe("semantic: the pause that ends a turn with no cue either way (pocketsphinx's language model gives most words one)"),
    trailingMs: z
      .number()
      .int()
      .min(100)
      .max(10_000)
      .default(1500)
      .describe('semantic: the longest pause held for a turn that trails off (a filler, "and", "for", "the"); what follows joins it'),
  })
  .refine((t) => t.completeMs <= t.openMs, { path: ["openMs"], message: "must be at least completeMs" })
  .refine((t) => t.openMs <= t.trailingMs, { path: ["trailingMs"], message: "must be at least openMs" });

/**
 * Realtime voice: a full-duplex speech model holds the conversation on calls
 * whose audio we handle. Each provider's own options are checked by its
 * schema (src/realtime/); the consult and context keys are the reference's,
 * accepted and checked.
 */
/** Names the service's own realtime tools have: a configured tool cannot take them. */
export const BUILT_IN_REALTIME_TOOLS = ["openclaw_end_call", "openclaw_agent_consult"] as const;

/**
 * A function the realtime model may call, as the reference's `realtime.tools` entries, plus how it
 * runs: `url`, an HTTP endpoint this service POSTs the call and the arguments to (its JSON answer
 * goes back to the model).
 */
const RealtimeTool = z.looseObject({
  type: z.literal("function").default("function").describe('"function"'),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "1-64 letters, digits, _ and -")
    .refine((n) => !(BUILT_IN_REALTIME_TOOLS as readonly string[]).includes(n), "the name of a built-in tool (openclaw_end_call, openclaw_agent_consult)")
    .describe("the function's name, as the model calls it"),
  description: z.string().default("").describe("what it does, for the model"),
  parameters: z.record(z.string(), z.unknown()).default({ type: "object", properties: {} }).describe("JSON Schema of its arguments"),
  url: z.url().optional().describe("where it runs: POST {tool, arguments, call} as JSON, the JSON answer goes back to the model; unset: the model is told it has no handler"),
  token: secret.optional().describe("bearer token sent to url"),
  timeoutMs: positiveInt.default(10_000).describe("how long url may take before the model is told it failed"),
});
export type RealtimeToolConfig = z.infer<typeof RealtimeTool>;

const RealtimeConfig = z.looseObject({
  enabled: z.boolean().default(false).describe("a speech-to-speech model holds the conversation on calls whose audio this service handles (instead of recogniser, responder and synthesizer)"),
  provider: z.string().min(1).optional().describe("realtime voice provider: openai (our own GA Realtime client); unset: openai. Inside the gateway: one of the gateway's realtime voice providers (openai, google, xai, ...); unset: the first configured"),
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).optional().describe("each realtime provider's own options, by id (realtime.providers.openai: apiKey, baseUrl, model, voice, ...)"),
  instructions: z.string().min(1).optional().describe("the realtime model's instructions; unset: responseSystemPrompt and the phone contract"),
  consultPolicy: z.enum(["auto", "substantive", "always"]).optional().describe("when the realtime model asks the agent"),
  toolPolicy: z.enum(["safe-read-only", "owner", "none"]).optional().describe("which of the agent's tools a consult may use: safe-read-only (unset: read, web_search, web_fetch, x_search, memory_search, memory_get), owner (the agent's own tool policy), none (no consult tool; openclaw_end_call stays)"),
  agentContext: z
    .looseObject({
      enabled: z.boolean().optional().describe("give the realtime model the agent's context"),
      maxChars: positiveInt.optional().describe("at most this much of it"),
      files: z.array(z.string()).optional().describe("the agent's files it is taken from"),
    })
    .optional()
    .describe("the agent's context for the realtime model"),
  tools: z
    .array(RealtimeTool)
    .refine((tools) => new Set(tools.map((t) => t.name)).size === tools.length, "two tools with one name")
    .optional()
    .describe("functions of your own the realtime model may call, each run by its url"),
  fastContext: z
    .looseObject({
      enabled: z.boolean().optional().describe("look up context quickly before consulting"),
      timeoutMs: positiveInt.optional().describe("how long the quick look-up may take"),
      fallbackToConsult: z.boolean().optional().describe("consult the agent when the quick look-up finds nothing"),
    })
    .optional()
    .describe("a quick context look-up before a consult"),
});

const RecordingConfig = z.strictObject({
  enabled: z.boolean().default(false).describe("record every call whose audio this service handles (a call's own record: true records it alone)"),
  channels: z.enum(["stereo", "mono"]).default("stereo").describe("stereo: the caller left, us right; mono: both mixed"),
  consentMessage: z.string().min(1).optional().describe("said first on every recorded call, e.g. that the call is recorded"),
});

const NumberOverride = z.strictObject({
  inboundPolicy: InboundPolicy.optional().describe("inboundPolicy for callers who dial this number"),
  allowFrom: z.array(CallerId).optional().describe("allowFrom for callers who dial this number"),
  inboundGreeting: z.string().min(1).optional().describe("the greeting callers of this number hear"),
  responseModel: z.string().min(1).optional().describe("responseModel for this number's callers"),
  responseSystemPrompt: z.string().min(1).optional().describe("responseSystemPrompt for this number's callers"),
  responseTimeoutMs: positiveInt.optional().describe("responseTimeoutMs for this number's callers"),
  provider: ProviderId.optional().describe("the carrier this number is on"),
  agentId: z.string().min(1).optional().describe("the gateway agent that answers this number (inside the gateway; before the plugin's agentId)"),
  recording: z
    .strictObject({
      enabled: z.boolean().optional().describe("record calls to or from this number (over recording.enabled)"),
      consentMessage: z.string().min(1).optional().describe("this number's consent message (over recording.consentMessage)"),
    })
    .optional()
    .describe("this number's recording, over recording"),
  tts: z
    .strictObject({
      provider: z.string().min(1).optional().describe("this number's text-to-speech engine"),
      providers: z.record(z.string(), z.record(z.string(), z.unknown())).optional().describe("its engines' options, merged key by key over tts.providers"),
    })
    .optional()
    .describe("this number's own voice, deep-merged over tts: inbound callers who dial it hear it where our engines speak"),
});
export type NumberOverride = z.infer<typeof NumberOverride>;

const AriServer = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, "1-32 letters, digits, _ and -")
    .optional()
    .describe("with several Asterisks: this one's name in call ids and logs (default ast1, ast2, … in list order)"),
  url: z.url().default("http://127.0.0.1:8088").describe("Asterisk's HTTP server (ARI)"),
  username: z.string().min(1).default("voicecall").describe("ARI user (ari.conf)"),
  password: secret.optional().describe("ARI password; required when Asterisk is used"),
  app: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only")
    .default("voicecall")
    .describe("the Stasis application; everything we create in Asterisk has ids starting with it"),
});
export type AriServerConfig = z.infer<typeof AriServer>;

const AsteriskConfig = z.strictObject({
  ari: z
    .union([
      AriServer,
      z
        .array(AriServer)
        .min(1)
        .refine((list) => new Set(list.map((s, i) => s.name ?? `ast${i + 1}`)).size === list.length, "each Asterisk needs its own name"),
    ])
    .prefault({})
    .describe("the ARI connection, or a list of them: several Asterisks (behind Kamailio; outbound calls go to the one with the fewest calls; docs/cluster.md)"),
  media: z
    .strictObject({
      transport: z
        .enum(["rtp", "websocket"])
        .default("rtp")
        .describe("how audio reaches us: externalMedia over RTP/UDP, or over a WebSocket to Asterisk's HTTP port (chan_websocket, Asterisk 22.5+; needed for slin16)"),
      bindHost: z.string().min(1).default("127.0.0.1").describe("where our RTP sockets bind"),
      advertiseHost: z.string().min(1).optional().describe("the address Asterisk sends RTP to; default bindHost"),
      rtpPortMin: z.number().int().min(1024).max(65535).default(40000).describe("lowest port of our RTP sockets"),
      rtpPortMax: z.number().int().min(1024).max(65535).default(40999).describe("highest port of our RTP sockets"),
      codec: z.enum(["ulaw", "alaw", "slin16"]).default("ulaw").describe("the externalMedia codec; slin16 (16 kHz) needs transport websocket"),
      inbandDtmf: z.boolean().default(false).describe("also read keys from the audio (trunks that send DTMF as tones); RFC 4733 keys arrive as ARI events either way"),
    })
    .prefault({})
    .describe("the externalMedia audio channel")
    .refine((m) => m.rtpPortMin <= m.rtpPortMax, {
      message: "rtpPortMin must not exceed rtpPortMax",
      path: ["rtpPortMax"],
    })
    .refine((m) => !(m.codec === "slin16" && m.transport === "rtp"), {
      message: 'slin16 needs transport "websocket": Asterisk 22 ignores slin16 it receives over externalMedia RTP (so the caller would hear nothing)',
      path: ["codec"],
    }),
  dialTemplate: z
    .string()
    .includes("{to}", { message: "must contain {to}" })
    .default("PJSIP/{to}")
    .describe("dial string of outbound calls, {to} replaced by the destination: PJSIP/{to} for a registered phone, PJSIP/{to}@trunk for a SIP trunk"),
});

const RoutingRule = z.strictObject({
  prefix: z.string().min(1).optional().describe('destination prefix, e.g. "+1", "sip:" or "2"'),
  pattern: z
    .string()
    .min(1)
    .refine(isValidRegex, "not a valid regular expression")
    .optional()
    .describe("regular expression matched against the whole destination"),
  provider: ProviderId.describe("the carrier of destinations that match"),
});

const RoutingConfig = z.strictObject({
  defaultProvider: ProviderId.optional().describe("the carrier of destinations no rule matches (default: provider)"),
  rules: z
    .array(
      RoutingRule.refine((r) => r.prefix !== undefined || r.pattern !== undefined, {
        message: "a rule needs prefix or pattern",
      }),
    )
    .default([])
    .describe("{prefix?, pattern?, provider}, tried in order; the first that fits picks the carrier"),
});

const MockConfig = z.strictObject({
  outcome: z.enum(["answer", "busy", "no-answer", "failed"]).default("answer").describe("what a simulated outbound call does"),
  ringMs: nonNegativeInt.default(300).describe("how long it rings first"),
  speakMsPerChar: nonNegativeInt.default(5).describe("simulated time to speak one character"),
  replies: z.array(z.string()).default(["I heard you say: {message}"]).describe("what the simulated caller says, one entry per turn; {message} is our last line"),
  replyDelayMs: nonNegativeInt.default(200).describe("how long the simulated caller takes to answer"),
  hangupAfterReplies: nonNegativeInt.default(0).describe("the simulated caller hangs up after this many replies; 0: never"),
  transferOutcome: z.enum(["connected", "declined", "no-answer", "busy", "voicemail", "failed"]).default("connected").describe("how a transfer goes: the person answers (connected), or why not"),
  warmTransfer: z.boolean().default(true).describe("whether it takes warm transfers (false: refuses them, as the cloud carriers do)"),
  answeredBy: z.enum(["human", "machine", "unknown"]).default("human").describe("what answering-machine detection finds on a simulated call"),
});

const ControlConfig = z.strictObject({
  token: secretOf(z.string().min(16, "must be at least 16 characters"))
    .optional()
    .describe("bearer token of the control API (VOICECALL_TOKEN wins); unset: generated on first start and kept in <store>/control-token"),
});

export const VoiceCallConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe("inside the gateway: run the voice-call service"),
  provider: ProviderId.default("mock").describe("the default carrier: twilio, telnyx, plivo, asterisk or mock (routing can pick another per call)"),
  fromNumber: CallerId.optional().describe("our caller id: E.164 for cloud carriers, or a PBX extension / caller id name for Asterisk and Mock"),
  toNumber: E164.optional().describe("the destination of calls that name none"),
  twilio: TwilioConfig.optional().describe("Twilio credentials (docs/twilio.md)"),
  telnyx: TelnyxConfig.optional().describe("Telnyx credentials (docs/telnyx.md)"),
  plivo: PlivoConfig.optional().describe("Plivo credentials (docs/plivo.md)"),
  skipSignatureVerification: z.boolean().default(false).describe("accept unsigned webhooks: development only"),
  serve: ServeConfig.prefault({}).describe("the HTTP server"),
  publicUrl: z.url().optional().describe("the full webhook URL carriers call (https://…/voice/webhook); wins over a tunnel"),
  tunnel: TunnelConfig.prefault({}).describe("a tunnel opened at start (docs/internet.md)"),
  tailscale: TailscaleConfig.prefault({}).describe("a Tailscale Funnel or Serve route opened at start (docs/internet.md)"),
  webhookSecurity: WebhookSecurityConfig.prefault({}).describe("which Host and X-Forwarded-* headers rebuild a webhook's signed URL when publicUrl is unset"),
  outbound: OutboundConfig.prefault({}).describe("outbound calls"),
  streaming: StreamingConfig.prefault({}).describe("call audio streamed to us, and speech recognition"),
  tts: TtsConfig.prefault({}).describe("text-to-speech where our engines speak (Asterisk, streamed cloud calls)"),
  bargeIn: BargeInConfig.prefault({}).describe("the voice detector: barge-in and the end of the caller's utterances"),
  inboundPolicy: InboundPolicy.default("disabled").describe(
    "who may call in: disabled, allowlist (callers in allowFrom), pairing (as allowlist; others are told they are not paired) or open",
  ),
  allowFrom: z.array(CallerId).default([]).describe("callers answered under allowlist or pairing: E.164 numbers, or PBX extensions on Asterisk"),
  inboundGreeting: z.string().min(1).optional().describe("what inbound callers hear first; unset: we listen at once"),
  numbers: z.record(E164, NumberOverride).default({}).describe("per dialled number: its own policy, greeting, model and voice (keys are E.164 numbers)"),
  maxDurationSeconds: positiveInt.default(300).describe("answered calls end (timeout) this long after the answer"),
  staleCallReaperSeconds: nonNegativeInt
    .default(120)
    .describe("calls never answered this many seconds after they started are reaped as timed out (answered calls end at maxDurationSeconds); 0 disables"),
  silenceTimeoutMs: positiveInt
    .default(600)
    .describe("with turnTaking.mode silence: the silence that ends the caller's utterance on the bus (offline recognition); cloud recognisers use their own endpointing"),
  turnTaking: TurnTakingConfig.prefault({}).describe("when the caller's turn ends: by their words (semantic) or after a fixed pause (docs/speech.md)"),
  transcriptTimeoutMs: positiveInt.default(180_000).describe("how long a conversation turn waits for the caller"),
  dtmfInterDigitTimeoutMs: positiveInt.default(3000).describe("keys pressed form one answer until #, the expected count, or this long without a key"),
  ringTimeoutMs: positiveInt.default(30_000).describe("unanswered outbound calls end as no-answer after this"),
  maxConcurrentCalls: positiveInt.default(10).describe("calls at once; more are refused with LIMIT_REACHED (inbound ones rejected)"),
  sessionScope: z.enum(["per-phone", "per-call", "main"]).default("per-phone").describe("the agent session a caller talks to, inside the gateway: per-phone agent:<id>:voice:<digits>, per-call agent:<id>:voice:call:<callId>, or main agent:<id>:main"),
  agentId: z.string().min(1).optional().describe("the gateway agent that answers callers and owns calls (inside the gateway; else its default agent)"),
  realtime: RealtimeConfig.prefault({}).describe("realtime voice: a speech-to-speech model on the call"),
  recording: RecordingConfig.prefault({}).describe("recording calls: WAV files from our own audio, beside the call log (docs/recording.md)"),
  store: z
    .union([
      z.string().min(1),
      StoreConfig,
    ])
    .optional()
    .describe('where calls are kept: a folder (the JSONL call log, with the control token and replay keys; default ~/.openclaw/voice-calls), or a PostgreSQL database shared by several instances ("postgres://user@host:5432/db", or { url, password, dir }; docs/cluster.md)'),
  cluster: ClusterConfig.prefault({}).describe("this instance among others on a shared store (docs/cluster.md)"),
  keepEndedCalls: positiveInt.default(1000).describe("ended calls kept in the call log, in memory and restored; older ones move to dated files in the store folder"),
  responseModel: z.string().min(1).optional().describe('the model answering inbound callers no agent drives, e.g. "openai/gpt-4o-mini" or any name the endpoint knows'),
  responseSystemPrompt: z.string().min(1).optional().describe("its system prompt"),
  responseTimeoutMs: positiveInt.default(30_000).describe("how long a reply may take"),
  responseBaseUrl: z
    .url()
    .default("https://api.openai.com/v1")
    .describe("the OpenAI-compatible chat endpoint for responseModel (a local model server works); inside the gateway its model runtime answers unless this names another endpoint"),
  responseApiKey: secret.optional().describe("bearer key for responseBaseUrl; local servers often need none"),
  asterisk: AsteriskConfig.prefault({}).describe("the Asterisk carrier (docs/asterisk.md)"),
  routing: RoutingConfig.prefault({}).describe("which carrier places each call"),
  control: ControlConfig.prefault({}).describe("the control API"),
  mock: MockConfig.prefault({}).describe("how the simulated carrier behaves"),
  log: z
    .strictObject({ level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info").describe("pino log level") })
    .prefault({})
    .describe("logging"),
});

export type VoiceCallConfig = z.infer<typeof VoiceCallConfigSchema>;
export type VoiceCallConfigInput = z.input<typeof VoiceCallConfigSchema>;

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    // An invalid pattern is reported as a config issue by the caller.
    return false;
  }
}
