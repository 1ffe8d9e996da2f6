import { Worker } from "node:worker_threads";
import { spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DtmfDetector } from "../src/audio/dtmf.js";
import { encodeG711 } from "../src/audio/g711.js";
import { toneRatio } from "../src/audio/goertzel.js";
import { toFrames, type AudioFrame } from "../src/audio/frame.js";
import { FramePacer } from "../src/audio/pacer.js";
import { ITEMS_KEPT, InputQueue, OutputQueue } from "../src/audio/transport.js";
import { SpeechDetector, frameDbfs } from "../src/audio/vad.js";
import { loadSilero } from "../src/audio/silero.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { buildRtp, parseRtp } from "../src/rtp/packet.js";
import { RtpUdpTransport } from "../src/rtp/udp-transport.js";
import { waitFor } from "./helpers.js";

const frame = (v: number): AudioFrame => ({ pcm: new Int16Array(160).fill(v), sampleRate: 8000 });

describe("output queue", () => {
  it("resolves a mark once every frame before it has been taken", async () => {
    const q = new OutputQueue();
    q.write(frame(1));
    q.write(frame(2));
    const mark = q.mark();
    let done = false;
    void mark.then(() => (done = true));
    expect(q.next()?.pcm[0]).toBe(1);
    await Promise.resolve();
    expect(done).toBe(false);
    expect(q.next()?.pcm[0]).toBe(2);
    expect(await mark).toBe(true);
    expect(q.next()).toBeUndefined();
  });

  it("clear drops queued frames and fails pending marks (barge-in)", async () => {
    const q = new OutputQueue();
    q.write(frame(1));
    const mark = q.mark();
    q.clear();
    expect(await mark).toBe(false);
    expect(q.next()).toBeUndefined();
    expect(await q.mark()).toBe(true);
  });

  it("counts the milliseconds of each named item that went out: cleared frames never count, other items apart, the newest ITEMS_KEPT kept", () => {
    const q = new OutputQueue();
    for (let i = 0; i < 10; i += 1) q.write(frame(i), "reply-1");
    q.write(frame(99));
    for (let i = 0; i < 4; i += 1) q.next();
    expect(q.playedMs("reply-1")).toBe(80);
    // Barge-in: what was queued of it never played.
    q.clear();
    expect(q.playedMs("reply-1")).toBe(80);
    q.write({ pcm: new Int16Array(320), sampleRate: 16000 }, "reply-2");
    q.write(frame(1)); // unnamed: counted nowhere
    q.next();
    q.next();
    expect([q.playedMs("reply-1"), q.playedMs("reply-2"), q.playedMs("unknown")]).toEqual([80, 20, 0]);
    for (let i = 0; i < ITEMS_KEPT; i += 1) {
      q.write(frame(i), `later-${i}`);
      q.next();
    }
    expect(q.playedMs("reply-1")).toBe(0);
    expect(q.playedMs(`later-${ITEMS_KEPT - 1}`)).toBe(20);
  });
});

describe("input queue", () => {
  it("keeps the newest frames when the reader falls behind", async () => {
    const q = new InputQueue(3);
    for (let i = 1; i <= 5; i += 1) q.push(frame(i));
    q.end();
    const got: number[] = [];
    for await (const f of q.iterate()) got.push(f.pcm[0]!);
    expect(got).toEqual([3, 4, 5]);
    expect(q.dropped).toBe(2);
  });
});

describe("frame pacer", () => {
  afterEach(() => vi.useRealTimers());

  it("ticks every stream once per 20 ms on one timer", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const pacer = new FramePacer(() => performance.now());
    const counts = [0, 0, 0];
    const offs = counts.map((_, i) => pacer.add({ tick: () => (counts[i]! += 1) }));
    vi.advanceTimersByTime(200);
    expect(counts).toEqual([10, 10, 10]);
    expect(vi.getTimerCount()).toBe(1);
    offs[0]!();
    vi.advanceTimersByTime(100);
    expect(counts).toEqual([10, 15, 15]);
    offs[1]!();
    offs[2]!();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("RTP/UDP media transport", () => {
  it("sends paced frames to the peer, accepts only the peer's packets, and sends silence when idle", async () => {
    const peer = createSocket("udp4");
    await new Promise<void>((r) => peer.bind(0, "127.0.0.1", () => r()));
    const stranger = createSocket("udp4");
    await new Promise<void>((r) => stranger.bind(0, "127.0.0.1", () => r()));
    const received: ReturnType<typeof parseRtp>[] = [];
    peer.on("message", (m) => received.push(parseRtp(m)));
    const t = await RtpUdpTransport.open({ codec: "ulaw", bindHost: "127.0.0.1", portMin: 41000, portMax: 41999 });
    try {
      await t.connect("127.0.0.1", peer.address().port);
      const tone = Int16Array.from({ length: 1600 }, (_, i) => Math.round(9000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
      for (const f of toFrames(tone, 8000)) t.write(f, "tone");
      expect(await t.mark()).toBe(true);
      // Everything written of it went out at the pacer's pace: 200 ms.
      expect(t.playedMs("tone")).toBe(200);
      await waitFor(() => received.length >= 14, "idle packets after the tone");
      // Ten tone frames, then silence; sequence numbers and timestamps advance by one frame each.
      for (let i = 1; i < received.length; i += 1) {
        expect((received[i]!.sequenceNumber - received[i - 1]!.sequenceNumber) & 0xffff).toBe(1);
        expect((received[i]!.timestamp - received[i - 1]!.timestamp) >>> 0).toBe(160);
      }
      expect(received[0]!.marker).toBe(true);
      expect(received.slice(0, 10).every((p) => p.payload.length === 160)).toBe(true);
      expect(received.slice(11).every((p) => p.payload.every((b) => b === 0xff))).toBe(true);

      // Caller audio: from the peer it arrives as frames; from anyone else it is dropped.
      const reading = (async () => {
        const frames: AudioFrame[] = [];
        for await (const f of t.frames()) frames.push(f);
        return frames;
      })();
      const ulaw = encodeG711("ulaw", Int16Array.from({ length: 160 }, (_, i) => Math.round(9000 * Math.sin((2 * Math.PI * 1000 * i) / 8000))));
      const send = (sock: typeof peer, seq: number) =>
        new Promise<void>((r) => sock.send(buildRtp({ marker: false, payloadType: 0, sequenceNumber: seq, timestamp: seq * 160, ssrc: 7, payload: ulaw }), t.localPort, "127.0.0.1", () => r()));
      await send(stranger, 1);
      for (let s = 100; s < 105; s += 1) await send(peer, s);
      await new Promise<void>((r) => peer.send(Buffer.from("garbage!"), t.localPort, "127.0.0.1", () => r()));
      await waitFor(() => t.stats.received === 5 && t.stats.malformed === 1, "packets to arrive");
      t.close();
      // A loaded machine can leave 60 ms between two packets (or before close): readers are then given the
      // idle silence, as on a real call. The peer's five packets are the frames with sound in them.
      const all = await reading;
      const frames = all.filter((f) => f.pcm.some((v) => v !== 0));
      expect(all.filter((f) => !frames.includes(f)).every((f) => f.pcm.length === 160)).toBe(true);
      expect(frames).toHaveLength(5);
      expect(toneRatio(frames[0]!.pcm, 8000, 1000)).toBeGreaterThan(0.45);
      // The stranger's packet never became a frame (the connected socket drops it in the kernel).
      expect(frames.every((f) => toneRatio(f.pcm, 8000, 1000) > 0.45)).toBe(true);
    } finally {
      t.close();
      peer.close();
      stranger.close();
    }
  });
});

describe("caller audio through a stalled event loop", () => {
  it("puts no silence before the far side's packets that arrived while the loop was stalled", async () => {
    const t = await RtpUdpTransport.open({ codec: "ulaw", bindHost: "127.0.0.1", portMin: 41000, portMax: 41999 });
    // The far side sends from another thread, so its packets land in the socket while this thread is busy.
    const far = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       const s = require("node:dgram").createSocket("udp4");
       s.bind(0, "127.0.0.1", () => {
         parentPort.postMessage(s.address().port);
         parentPort.once("message", () => {
           let seq = 0;
           const next = () => {
             const packet = Buffer.alloc(172, 0x11);
             packet[0] = 0x80; packet[1] = 0; packet.writeUInt16BE(seq, 2); packet.writeUInt32BE(seq * 160, 4); packet.writeUInt32BE(7, 8);
             s.send(packet, workerData, "127.0.0.1");
             if (++seq < 7) setTimeout(next, 5);
             else parentPort.postMessage("sent");
           };
           next();
         });
       });`,
      { eval: true, workerData: t.localPort },
    );
    try {
      const farPort = await new Promise<number>((r) => far.once("message", r));
      await t.connect("127.0.0.1", farPort);
      const frames: AudioFrame[] = [];
      const reading = (async () => {
        for await (const f of t.frames()) frames.push(f);
      })();
      // The far side is quiet at first: readers get its silence, as on a call.
      await waitFor(() => frames.length >= 3, "the idle silence");
      const sent = new Promise((r) => far.once("message", r));
      const before = frames.length;
      far.postMessage("go");
      // A stall of 150 ms (a busy moment on a loaded machine) while its seven packets arrive.
      const until = performance.now() + 150;
      while (performance.now() < until);
      await sent;
      await waitFor(() => frames.filter((f) => f.pcm.some((v) => v !== 0)).length === 7, "the seven packets as frames");
      t.close();
      await reading;
      const after = frames.slice(before).map((f) => f.pcm.some((v) => v !== 0));
      const first = after.indexOf(true);
      // The stall's catch-up ticks found no audio yet: their silence would have come before the packets
      // (six or more frames). At most the silence already due before the stall may come first.
      expect(first, `frames after the stall began: ${after.map((v) => (v ? "x" : ".")).join("")}`).toBeLessThanOrEqual(2);
      expect(after.slice(first, first + 7).every(Boolean)).toBe(true);
    } finally {
      t.close();
      await far.terminate();
    }
  });
});

const sileroMissing = await loadSilero().then(
  () => undefined,
  (err: Error) => err.message,
);
if (sileroMissing) console.warn(`skipping the Silero detector tests: ${sileroMissing}`);
/** The detectors to test: WebRTC always, Silero where its packages are installed (.ci/run installs them). */
const vads = sileroMissing ? (["webrtc"] as const) : (["webrtc", "silero"] as const);
/** Silero judges each 32 ms window asynchronously: let it, as real time would. */
const pause = (vad: string) => (vad === "silero" ? new Promise((r) => setImmediate(r)) : undefined);

describe("speech detector", () => {
  const frame = (pcm: Int16Array) => ({ pcm, sampleRate: 8000 as const });
  const noise = (amplitude: number) => frame(Int16Array.from({ length: 160 }, () => Math.round((Math.random() * 2 - 1) * amplitude)));

  it.skipIf(spawnSync("flite", ["-lv"]).status !== 0).each(vads)("%s: finds the start and end of a spoken sentence", async (vad) => {
    const detector = await SpeechDetector.create(8000, { vad, minSpeechMs: 120, minSilenceMs: 400 });
    const edges: Array<[string, number]> = [];
    let t = 0;
    const push = (f: ReturnType<typeof frame>) => {
      const edge = detector.push(f);
      if (edge) edges.push([edge, t]);
      t += 20;
    };
    for (let i = 0; i < 25; i += 1) push(noise(30));
    for await (const f of new FliteSynthesizer().synthesize("I would like to speak to somebody about my order.", { sampleRate: 8000 })) {
      push(frame(f.pcm));
      await pause(vad);
    }
    const spokenUntil = t;
    for (let i = 0; i < 40; i += 1) {
      push(noise(30));
      await pause(vad);
    }
    detector.close();
    expect(edges.map((e) => e[0])).toEqual(["start", "end"]);
    // Onset within 450 ms of the audio starting (flite leads with ~150 ms of quiet); the end after the words.
    expect(edges[0]![1]).toBeGreaterThanOrEqual(500);
    expect(edges[0]![1]).toBeLessThan(950);
    expect(edges[1]![1]).toBeGreaterThan(spokenUntil - 400);
  });

  it.skipIf(spawnSync("flite", ["-lv"]).status !== 0)("ignores speech under the energy floor and bursts shorter than the minimum", async () => {
    const speech: Int16Array[] = [];
    for await (const f of new FliteSynthesizer().synthesize("Did you hear that on the radio this morning?", { sampleRate: 8000 })) speech.push(f.pcm);
    // The same words far away (a television in the room): about 34 dB quieter.
    const distant = speech.map((pcm) => pcm.map((v) => Math.round(v / 50)));
    const run = async (options: Parameters<typeof SpeechDetector.create>[1], frames: Int16Array[]) => {
      const detector = await SpeechDetector.create(8000, options);
      const edges = frames.map((pcm) => detector.push(frame(pcm))).filter(Boolean);
      detector.close();
      return edges;
    };
    expect(Math.max(...distant.map(frameDbfs))).toBeLessThan(-40);
    expect(await run({ energyThresholdDb: -40 }, distant)).toEqual([]);
    // With the floor lowered, the detector does hear it: the floor is what ignored it.
    expect(await run({ energyThresholdDb: -70 }, distant)).toContain("start");
    // 100 ms of loud speech is too short to count as the caller talking.
    const burst = [...speech.slice(10, 15), ...Array.from({ length: 30 }, () => noise(30).pcm)];
    expect(await run({ minSpeechMs: 200 }, burst)).toEqual([]);
    expect(await run({ minSpeechMs: 60 }, burst)).toContain("start");
    expect(await run({ minSpeechMs: 200 }, speech)).toContain("start");
  });
});

describe("in-band DTMF detector", () => {
  const ROWS = [697, 770, 852, 941];
  const COLS = [1209, 1336, 1477, 1633];
  const KEYS = ["123A", "456B", "789C", "*0#D"];
  /** Keys as a phone sends them in-band: 80 ms of tone, 60 ms apart, some line noise, 3 dB twist. */
  function keyAudio(keys: string, rate: number): Int16Array {
    const out: number[] = [];
    const push = (ms: number, f?: [number, number]) => {
      for (let i = 0; i < (rate * ms) / 1000; i += 1) {
        const tone = f ? 4000 * Math.sin((2 * Math.PI * f[0] * i) / rate) + 5600 * Math.sin((2 * Math.PI * f[1] * i) / rate) : 0;
        out.push(Math.round(tone + (Math.random() * 2 - 1) * 150));
      }
    };
    push(100);
    for (const key of keys) {
      const r = KEYS.findIndex((row) => row.includes(key));
      push(80, [ROWS[r]!, COLS[KEYS[r]!.indexOf(key)]!]);
      push(60);
    }
    return Int16Array.from(out);
  }
  const detect = (pcm: Int16Array, rate: 8000 | 16000) => {
    const detector = new DtmfDetector();
    const n = rate / 50;
    let keys = "";
    for (let i = 0; i + n <= pcm.length; i += n) keys += detector.push({ pcm: pcm.subarray(i, i + n), sampleRate: rate }) ?? "";
    return keys;
  };

  it.each([8000, 16000] as const)("reads every key once, in order, at %i Hz", (rate) => {
    expect(detect(keyAudio("1590*#AD", rate), rate)).toBe("1590*#AD");
    expect(detect(keyAudio("55", rate), rate)).toBe("55");
  });

  it("reads frames that are views into a larger pooled buffer", () => {
    const audio = keyAudio("38", 8000);
    const pool = Buffer.alloc(audio.byteLength + 1000);
    Buffer.from(audio.buffer).copy(pool, 512);
    const view = new Int16Array(pool.buffer, pool.byteOffset + 512, audio.length);
    expect(detect(view, 8000)).toBe("38");
  });

  it.skipIf(spawnSync("flite", ["-lv"]).status !== 0)("finds no keys in speech", async () => {
    const speech: number[] = [];
    for await (const f of new FliteSynthesizer().synthesize("Please press one for sales, or nine to hear these options again.", { sampleRate: 8000 })) speech.push(...f.pcm);
    expect(detect(Int16Array.from(speech), 8000)).toBe("");
  });
});
