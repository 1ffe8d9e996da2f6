// The gateway's plugin SDK subpaths ship JavaScript without declarations; src/gateway/sdk.ts types what we use.
declare module "openclaw/plugin-sdk/*";
