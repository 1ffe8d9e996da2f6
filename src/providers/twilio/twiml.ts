/** TwiML documents through the SDK's VoiceResponse. */
import twilio from "twilio";
import type { Documents } from "../document-speech.js";

export type TwiML = twilio.twiml.VoiceResponse;

export function hangupTwiml(): TwiML {
  const response = new twilio.twiml.VoiceResponse();
  response.hangup();
  return response;
}

/** A second of silence, then the same request again (`url`: what Twilio asked): the call is between instances. */
export function retryTwiml(url: string): TwiML {
  const response = new twilio.twiml.VoiceResponse();
  response.pause({ length: 1 });
  response.redirect({ method: "POST" }, url);
  return response;
}

export function rejectTwiml(): TwiML {
  const response = new twilio.twiml.VoiceResponse();
  response.reject({ reason: "rejected" });
  return response;
}

/** Twilio's documents for when it speaks and listens itself (streaming off). */
export const twilioDocuments: Documents = {
  say(text, back) {
    const response = new twilio.twiml.VoiceResponse();
    response.say(text);
    response.redirect({ method: "POST" }, back);
    return response.toString();
  },
  press(digits, back) {
    const response = new twilio.twiml.VoiceResponse();
    // Play's digits take w as a half-second pause, as sendDtmf's do.
    response.play({ digits });
    response.redirect({ method: "POST" }, back);
    return response.toString();
  },
  listen(action, seconds, waitSeconds) {
    const response = new twilio.twiml.VoiceResponse();
    response.gather({ input: ["dtmf", "speech"], action, method: "POST", timeout: seconds, speechTimeout: "auto", finishOnKey: "#", actionOnEmptyResult: false });
    response.pause({ length: waitSeconds });
    return response.toString();
  },
  wait(seconds) {
    const response = new twilio.twiml.VoiceResponse();
    response.pause({ length: seconds });
    return response.toString();
  },
};
