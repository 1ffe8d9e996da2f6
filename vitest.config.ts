import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // Memory checks (the ingress fuzz) measure after a full collection, not whatever garbage is pending.
    execArgv: ["--expose-gc"],
  },
});
