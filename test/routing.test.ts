import { describe, expect, it } from "vitest";
import { routeCall } from "../src/calls/routing.js";
import { resolveConfig } from "../src/configure.js";

const { config } = resolveConfig({
  provider: "mock",
  routing: {
    defaultProvider: "mock",
    rules: [
      { pattern: "[0-9]{3,4}", provider: "asterisk" },
      { prefix: "sip:", provider: "asterisk" },
      { prefix: "+44", provider: "twilio" },
    ],
  },
  fromNumber: "+15550000000",
  twilio: { accountSid: "AC", authToken: "t" },
  publicUrl: "https://voice.example.com/voice/webhook",
  asterisk: { ari: { password: "p" } },
});

describe("routing", () => {
  it("sends a request's explicit provider first", () => {
    expect(routeCall(config, "+442071234567", "mock")).toEqual({ provider: "mock", reason: "request" });
  });
  it("applies the first matching rule", () => {
    expect(routeCall(config, "6001")).toEqual({ provider: "asterisk", reason: "routing.rules[0]" });
    expect(routeCall(config, "sip:alice@pbx")).toEqual({ provider: "asterisk", reason: "routing.rules[1]" });
    expect(routeCall(config, "+442071234567")).toEqual({ provider: "twilio", reason: "routing.rules[2]" });
  });
  it("matches patterns against the whole destination", () => {
    expect(routeCall(config, "60012").provider).toBe("mock");
  });
  it("falls back to routing.defaultProvider", () => {
    expect(routeCall(config, "+15550001234")).toEqual({ provider: "mock", reason: "routing.defaultProvider" });
  });
});
