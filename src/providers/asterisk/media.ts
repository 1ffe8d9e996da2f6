/**
 * Our end of a call's externalMedia channel on Asterisk: RTP to a UDP
 * socket of ours (connected to the address Asterisk reports), or a
 * WebSocket (chan_websocket), and whether the caller's leg is narrowband.
 */
import type { VoiceCallConfig } from "../../config/schema.js";
import type { Logger } from "../../log.js";
import { RtpUdpTransport } from "../../rtp/udp-transport.js";
import type { AriClient } from "./ari.js";
import { WebSocketMedia } from "./ws-media.js";

type MediaConfig = VoiceCallConfig["asterisk"]["media"];

/** externalMedia over RTP. `hold` gets the socket at once, so a failure after it still closes it. */
export async function rtpMedia(ari: AriClient, media: MediaConfig, mediaId: string, hold: (transport: RtpUdpTransport) => void): Promise<RtpUdpTransport> {
  const transport = await RtpUdpTransport.open({ codec: media.codec, bindHost: media.bindHost, portMin: media.rtpPortMin, portMax: media.rtpPortMax });
  hold(transport);
  const host = media.advertiseHost ?? media.bindHost;
  const channel = await ari.channels.externalMedia({
    channelId: mediaId,
    externalHost: `${host.includes(":") ? `[${host}]` : host}:${transport.localPort}`,
    format: media.codec,
  });
  const address = channel.channelvars?.UNICASTRTP_LOCAL_ADDRESS;
  const port = Number(channel.channelvars?.UNICASTRTP_LOCAL_PORT);
  if (!address || !Number.isInteger(port)) throw new Error("Asterisk did not report UNICASTRTP_LOCAL_ADDRESS/PORT");
  await transport.connect(address, port);
  return transport;
}

/** externalMedia over a WebSocket (chan_websocket): Asterisk waits for us at /media/<connection id>. */
export async function websocketMedia(ari: AriClient, media: MediaConfig, mediaId: string): Promise<WebSocketMedia> {
  const channel = await ari.channels.externalMedia({
    channelId: mediaId,
    externalHost: "INCOMING",
    format: media.codec,
    transport: "websocket",
    encapsulation: "none",
    connectionType: "server",
  });
  const connectionId = channel.channelvars?.MEDIA_WEBSOCKET_CONNECTION_ID;
  if (!connectionId) throw new Error("Asterisk did not report MEDIA_WEBSOCKET_CONNECTION_ID (is chan_websocket loaded?)");
  return WebSocketMedia.connect({ ...ari.mediaSocket(connectionId), codec: media.codec });
}

/**
 * Whether the caller's leg is telephone-band: a wideband transport then
 * carries 8 kHz audio Asterisk upsampled, and recognisers tuned for phone
 * audio must know. Unknown counts as wideband.
 */
export async function isNarrowband(ari: AriClient, channelId: string, log: Logger): Promise<boolean> {
  try {
    const format = await ari.channels.getVariable(channelId, "CHANNEL(audionativeformat)");
    return /\b(ulaw|alaw|gsm|g729|ilbc|g726|slin)\b/.test(format) && !/g722|opus|slin16|siren|speex16/.test(format);
  } catch (err) {
    log.debug({ callId: channelId, err: String(err) }, "could not read the caller's codec");
    return false;
  }
}
