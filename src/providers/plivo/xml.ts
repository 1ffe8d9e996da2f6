/** Plivo XML documents through the SDK's builder (its Response is a constructor function the SDK types as a plain one). */
import plivo from "plivo";
import type { Documents } from "../document-speech.js";

export interface PlivoXml {
  addStream(url: string, attributes: Record<string, string>): unknown;
  addHangup(attributes: Record<string, string>): unknown;
  addSpeak(text: string, attributes?: Record<string, string>): unknown;
  addRedirect(url: string, attributes?: Record<string, string>): unknown;
  addWait(attributes: Record<string, string>): unknown;
  addGetInput(attributes: Record<string, string>): unknown;
  addDial(attributes: Record<string, string>): { addNumber(number: string, attributes?: Record<string, string>): unknown };
  addConference(name: string, attributes: Record<string, string>): unknown;
  toXML(): string;
}

export function plivoXml(): PlivoXml {
  const Response = plivo.Response as unknown as new () => PlivoXml;
  return new Response();
}

/** Plivo's documents for when it speaks and listens itself (streaming off). */
export const plivoDocuments: Documents = {
  say(text, back) {
    const xml = plivoXml();
    xml.addSpeak(text);
    xml.addRedirect(back, { method: "POST" });
    return xml.toXML();
  },
  listen(action, seconds, waitSeconds) {
    const xml = plivoXml();
    xml.addGetInput({
      action,
      method: "POST",
      inputType: "dtmf speech",
      executionTimeout: String(seconds),
      speechEndTimeout: "1",
      digitEndTimeout: "3",
      finishOnKey: "#",
      redirect: "true",
      log: "false",
    });
    xml.addWait({ length: String(waitSeconds) });
    return xml.toXML();
  },
  wait(seconds) {
    const xml = plivoXml();
    xml.addWait({ length: String(seconds) });
    return xml.toXML();
  },
};
