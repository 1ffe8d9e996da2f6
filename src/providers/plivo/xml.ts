/** Plivo XML documents through the SDK's builder (its Response is a constructor function the SDK types as a plain one). */
import plivo from "plivo";

export interface PlivoXml {
  addStream(url: string, attributes: Record<string, string>): unknown;
  addHangup(attributes: Record<string, string>): unknown;
  addSpeak(text: string, attributes?: Record<string, string>): unknown;
  addRedirect(url: string, attributes?: Record<string, string>): unknown;
  addWait(attributes: Record<string, string>): unknown;
  addGetInput(attributes: Record<string, string>): unknown;
  toXML(): string;
}

export function plivoXml(): PlivoXml {
  const Response = plivo.Response as unknown as new () => PlivoXml;
  return new Response();
}
