/** Plivo's official SDK client, and its failures made plain for users. */
import { createRequire } from "node:module";
import plivo from "plivo";

export type PlivoClient = InstanceType<typeof plivo.Client>;

/** A Plivo SDK failure: the HTTP status when Plivo answered, and one line of message. */
export class PlivoFailure extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/**
 * The SDK's promise with its failures made plain: it rejects with its own
 * error classes for HTTP errors, but with a stack trace as a string when
 * Plivo cannot be reached; neither should reach a user as is.
 */
export function sdk<T>(promise: Promise<T> | T): Promise<T> {
  return Promise.resolve(promise).catch((err: unknown) => {
    if (typeof err === "string") throw new PlivoFailure(err.split("\n")[0]!.replace(/^Error: /, "") || "Plivo's API did not answer");
    const e = err as { status?: number; message?: unknown };
    const status = typeof e.status === "number" ? e.status : undefined;
    const message = typeof e.message === "string" && e.message ? e.message.split("\n")[0]! : `HTTP ${status ?? "error"}`;
    throw new PlivoFailure(status ? `Plivo answered HTTP ${status}: ${message}` : message, status);
  });
}

/**
 * The SDK's client. With `apiBaseUrl` (tests: a local server speaking
 * Plivo's API) its call, account and number resources send every request
 * there: the SDK's HTTP layer otherwise sends voice requests to a fixed host.
 */
export function plivoClient(authId: string, authToken: string, apiBaseUrl: string | undefined): PlivoClient {
  const client = new plivo.Client(authId, authToken, { timeout: 15_000 });
  if (!apiBaseUrl) return client;
  const require = createRequire(import.meta.url);
  const { Axios } = require("plivo/dist/rest/axios.js") as { Axios: (options: Record<string, unknown>) => Request };
  const { camelCaseRequestWrapper } = require("plivo/dist/rest/utils.js") as { camelCaseRequestWrapper: (r: Request) => Request };
  const { CallInterface } = require("plivo/dist/resources/call.js") as { CallInterface: new (r: Request) => PlivoClient["calls"] };
  const { AccountInterface } = require("plivo/dist/resources/accounts.js") as { AccountInterface: new (r: Request) => PlivoClient["accounts"] };
  const { NumberInterface } = require("plivo/dist/resources/numbers.js") as { NumberInterface: new (r: Request) => PlivoClient["numbers"] };
  const send = camelCaseRequestWrapper(Axios({ authId, authToken, version: "v1", url: `${apiBaseUrl.replace(/\/$/, "")}/v1/Account/${authId}`, userAgent: "plivo-node" }));
  const local: Request = (method, action, params) => {
    if (params) delete params.isVoiceRequest;
    return send(method, action, params);
  };
  Object.assign(client, { calls: new CallInterface(local), accounts: new AccountInterface(local), numbers: new NumberInterface(local) });
  return client;
}

type Request = (method: string, action: string, params?: Record<string, unknown>) => Promise<unknown>;
