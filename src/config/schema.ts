/**
 * The one schema for the whole configuration. Keys and meanings follow the
 * reference voice-call plugin's README; `asterisk`, `routing`, `control` and
 * `mock` are this project's additions. Defaults live here and nowhere else.
 */
import { z } from "zod";

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

const secret = z.string().min(1);
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

const TwilioConfig = z.strictObject({
  accountSid: secret.optional(),
  authToken: secret.optional(),
  /** Twilio's REST region for non-US processing; credentials must be from that region. */
  region: z.enum(["us1", "ie1", "au1"]).optional(),
});
const TelnyxConfig = z.strictObject({
  apiKey: secret.optional(),
  connectionId: secret.optional(),
  publicKey: secret.optional(),
});
const PlivoConfig = z.strictObject({ authId: secret.optional(), authToken: secret.optional() });

const ServeConfig = z.strictObject({
  port: z.number().int().min(0).max(65535).default(3334),
  bind: z.string().min(1).default("127.0.0.1"),
  path: z.string().startsWith("/", "must start with /").default("/voice/webhook"),
});

const TunnelConfig = z.strictObject({
  provider: z.enum(["none", "ngrok", "tailscale-serve", "tailscale-funnel"]).default("none"),
  ngrokAuthToken: secret.optional(),
  ngrokDomain: z.string().min(1).optional(),
  allowNgrokFreeTierLoopbackBypass: z.boolean().default(false),
});

const TailscaleConfig = z
  .strictObject({
    mode: z.enum(["off", "serve", "funnel"]).default("off"),
    path: z.string().startsWith("/", "must start with /").default("/voice/webhook"),
    /** External HTTPS port; Funnel accepts only 443, 8443 and 10000. */
    port: z.number().int().min(1).max(65535).default(443),
  })
  .refine((t) => t.mode !== "funnel" || [443, 8443, 10000].includes(t.port), {
    message: "Tailscale Funnel accepts only ports 443, 8443 or 10000",
    path: ["port"],
  });

const WebhookSecurityConfig = z.strictObject({
  allowedHosts: z.array(z.string().min(1)).default([]),
  trustForwardingHeaders: z.boolean().default(false),
  trustedProxyIPs: z.array(z.string().min(1)).default([]),
});

const OutboundConfig = z.strictObject({
  defaultMode: CallMode.default("notify"),
  /** Seconds to wait after the message before hanging up in notify mode. */
  notifyHangupDelaySec: nonNegativeInt.default(3),
});

const StreamingConfig = z.strictObject({
  /** Carriers stream call audio to us (our speech engines). Off: the cloud carriers speak and listen themselves (Asterisk always streams to us). */
  enabled: z.boolean().default(true),
  /** Speech provider id; unset means the first registered one in auto-select order. */
  provider: z.string().min(1).optional(),
  /** Provider-owned options, keyed by provider id. */
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  streamPath: z.string().startsWith("/", "must start with /").default("/voice/stream"),
  /** A media stream must send its start frame within this time or it is closed. */
  preStartTimeoutMs: positiveInt.default(5000),
  maxPendingConnections: positiveInt.default(32),
  maxPendingConnectionsPerIp: positiveInt.default(4),
  maxConnections: positiveInt.default(128),
});

const TtsConfig = z.strictObject({
  /**
   * Text-to-speech for carriers whose audio we produce (Asterisk): flite,
   * espeak-ng, openai, elevenlabs. Unset: the first configured in auto-select
   * order (openai, elevenlabs once a key is set; else offline flite).
   */
  provider: z.string().min(1).optional(),
  /** Provider-owned options, e.g. providers.flite.voice ("rms", "awb", "slt", "kal16"). */
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
});

const BargeInConfig = z.strictObject({
  /** The caller talking over us stops our audio (never during an outbound call's opening message). */
  enabled: z.boolean().default(true),
  /** Quieter than this (dBFS) is never speech: room tone and line noise stay below it. */
  energyThresholdDb: z.number().min(-90).max(0).default(-40),
  /** Speech must last this long before it interrupts us. */
  minSpeechMs: z.number().int().min(20).max(2000).default(120),
  /** The voice detector: WebRTC's VAD, or Silero v5 (needs onnxruntime-node and @ricky0123/vad-web installed). */
  vad: z.enum(["webrtc", "silero"]).default("webrtc"),
  /** WebRTC VAD aggressiveness, 0 (lenient) to 3 (strict). */
  vadMode: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]).default(2),
});

/**
 * Realtime voice (a full-duplex speech model on the call) is not built yet:
 * the keys are accepted and checked so a reference config loads, and
 * `realtime.enabled` is reported at start as not available.
 */
const RealtimeConfig = z.looseObject({
  enabled: z.boolean().default(false),
  provider: z.string().min(1).optional(),
  providers: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  consultPolicy: z.enum(["auto", "substantive", "always"]).optional(),
  toolPolicy: z.enum(["safe-read-only", "owner", "none"]).optional(),
  agentContext: z.looseObject({ enabled: z.boolean().optional(), maxChars: positiveInt.optional(), files: z.array(z.string()).optional() }).optional(),
  fastContext: z.looseObject({ enabled: z.boolean().optional(), timeoutMs: positiveInt.optional(), fallbackToConsult: z.boolean().optional() }).optional(),
});

const NumberOverride = z.strictObject({
  inboundPolicy: InboundPolicy.optional(),
  allowFrom: z.array(CallerId).optional(),
  inboundGreeting: z.string().min(1).optional(),
  responseModel: z.string().min(1).optional(),
  responseSystemPrompt: z.string().min(1).optional(),
  responseTimeoutMs: positiveInt.optional(),
  provider: ProviderId.optional(),
  /** The gateway agent that answers this number (accepted; agent-driven inbound calls are not built yet). */
  agentId: z.string().min(1).optional(),
  /** This number's own voice, deep-merged over `tts`: inbound callers who dial it hear it (where our engines speak). */
  tts: z
    .strictObject({
      provider: z.string().min(1).optional(),
      providers: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
    })
    .optional(),
});
export type NumberOverride = z.infer<typeof NumberOverride>;

const AsteriskConfig = z.strictObject({
  ari: z
    .strictObject({
      url: z.url().default("http://127.0.0.1:8088"),
      username: z.string().min(1).default("voicecall"),
      password: secret.optional(),
      app: z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only").default("voicecall"),
    })
    .prefault({}),
  media: z
    .strictObject({
      /**
       * How audio reaches us: externalMedia over RTP/UDP, or over a WebSocket
       * to Asterisk's HTTP port (chan_websocket, Asterisk 22.5+; carries slin16 both ways).
       */
      transport: z.enum(["rtp", "websocket"]).default("rtp"),
      /** Where our RTP sockets bind. */
      bindHost: z.string().min(1).default("127.0.0.1"),
      /** The address Asterisk sends RTP to; defaults to bindHost. */
      advertiseHost: z.string().min(1).optional(),
      rtpPortMin: z.number().int().min(1024).max(65535).default(40000),
      rtpPortMax: z.number().int().min(1024).max(65535).default(40999),
      codec: z.enum(["ulaw", "alaw", "slin16"]).default("ulaw"),
      /** Also read keys from the audio (trunks that send DTMF in-band); RFC 4733 keys arrive as ARI events either way. */
      inbandDtmf: z.boolean().default(false),
    })
    .prefault({})
    .refine((m) => m.rtpPortMin <= m.rtpPortMax, {
      message: "rtpPortMin must not exceed rtpPortMax",
      path: ["rtpPortMax"],
    })
    .refine((m) => !(m.codec === "slin16" && m.transport === "rtp"), {
      message: 'slin16 needs transport "websocket": Asterisk 22 ignores slin16 it receives over externalMedia RTP (so the caller would hear nothing)',
      path: ["codec"],
    }),
  /** Dial string for outbound calls; {to} is replaced by the destination. */
  dialTemplate: z.string().includes("{to}", { message: "must contain {to}" }).default("PJSIP/{to}"),
});

const RoutingRule = z.strictObject({
  /** Destination prefix, e.g. "+1" or "sip:" or "2". */
  prefix: z.string().min(1).optional(),
  /** Regular expression tested against the whole destination. */
  pattern: z
    .string()
    .min(1)
    .refine(isValidRegex, "not a valid regular expression")
    .optional(),
  provider: ProviderId,
});

const RoutingConfig = z.strictObject({
  defaultProvider: ProviderId.optional(),
  rules: z
    .array(
      RoutingRule.refine((r) => r.prefix !== undefined || r.pattern !== undefined, {
        message: "a rule needs prefix or pattern",
      }),
    )
    .default([]),
});

const MockConfig = z.strictObject({
  /** What an outbound call does: answer, busy, no-answer, or fail. */
  outcome: z.enum(["answer", "busy", "no-answer", "failed"]).default("answer"),
  ringMs: nonNegativeInt.default(300),
  /** Simulated time to speak one character of text. */
  speakMsPerChar: nonNegativeInt.default(5),
  /** What the simulated caller says in turn, one entry per listen; {message} is our last line. */
  replies: z.array(z.string()).default(["I heard you say: {message}"]),
  replyDelayMs: nonNegativeInt.default(200),
  /** Hang up (as the caller) after this many replies; 0 never. */
  hangupAfterReplies: nonNegativeInt.default(0),
});

const ControlConfig = z.strictObject({
  /** Bearer token for POST /rpc; env VOICECALL_TOKEN wins. */
  token: z.string().min(16, "must be at least 16 characters").optional(),
});

export const VoiceCallConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  provider: ProviderId.default("mock"),
  fromNumber: CallerId.optional(),
  toNumber: E164.optional(),
  twilio: TwilioConfig.optional(),
  telnyx: TelnyxConfig.optional(),
  plivo: PlivoConfig.optional(),
  skipSignatureVerification: z.boolean().default(false),
  serve: ServeConfig.prefault({}),
  publicUrl: z.url().optional(),
  tunnel: TunnelConfig.prefault({}),
  tailscale: TailscaleConfig.prefault({}),
  webhookSecurity: WebhookSecurityConfig.prefault({}),
  outbound: OutboundConfig.prefault({}),
  streaming: StreamingConfig.prefault({}),
  tts: TtsConfig.prefault({}),
  bargeIn: BargeInConfig.prefault({}),
  inboundPolicy: InboundPolicy.default("disabled"),
  /** Callers answered under allowlist/pairing: E.164 numbers, or PBX extensions (callers on Asterisk). */
  allowFrom: z.array(CallerId).default([]),
  inboundGreeting: z.string().min(1).optional(),
  numbers: z.record(E164, NumberOverride).default({}),
  maxDurationSeconds: positiveInt.default(300),
  /** Calls not ended after this many seconds are reaped as timed out; 0 disables. */
  staleCallReaperSeconds: nonNegativeInt.default(600),
  /** Silence that ends the caller's utterance on the bus (the voice detector); cloud recognisers use their own. */
  silenceTimeoutMs: positiveInt.default(600),
  /** How long a conversation turn waits for the caller to say something. */
  transcriptTimeoutMs: positiveInt.default(180_000),
  /** Keys pressed form one answer until #, the expected count, or this long without a key. */
  dtmfInterDigitTimeoutMs: positiveInt.default(3000),
  ringTimeoutMs: positiveInt.default(30_000),
  maxConcurrentCalls: positiveInt.default(10),
  sessionScope: z.enum(["per-phone", "per-call", "main"]).default("per-phone"),
  /** The gateway agent that owns calls (responses and sessions); unset: the only agent. */
  agentId: z.string().min(1).optional(),
  realtime: RealtimeConfig.prefault({}),
  store: z.string().min(1).optional(),
  /** Ended calls kept in the call log and restored at start; older ones move to dated files in the store folder. */
  keepEndedCalls: positiveInt.default(1000),
  responseModel: z.string().min(1).optional(),
  responseSystemPrompt: z.string().min(1).optional(),
  responseTimeoutMs: positiveInt.default(30_000),
  /** OpenAI-compatible chat endpoint for responseModel (a local model server works too). */
  responseBaseUrl: z.url().default("https://api.openai.com/v1"),
  /** Bearer key for responseBaseUrl; env OPENAI_API_KEY. Local servers often need none. */
  responseApiKey: secret.optional(),
  asterisk: AsteriskConfig.prefault({}),
  routing: RoutingConfig.prefault({}),
  control: ControlConfig.prefault({}),
  mock: MockConfig.prefault({}),
  log: z.strictObject({ level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info") }).prefault({}),
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
