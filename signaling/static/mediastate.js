// The media-state message on the chat channel (docs/datachannels.md, "Media state"):
// microphone on or muted, camera on, off or the screen. Pure: no DOM, no channels.

export const MEDIA_TYPE = 'media';
export const AUDIO_VALUES = Object.freeze(['on', 'muted']);
export const VIDEO_VALUES = Object.freeze(['on', 'off', 'screen']);
const MAX_MEDIA_MESSAGE_BYTES = 256;

export function mediaStateMessage({ audio, video }) {
  return JSON.stringify({ type: MEDIA_TYPE, audio, video });
}

// {audio, video} from a message on the chat channel, or null when it is not a valid
// media-state message (chat lines and everything else are the chat box's business).
export function parseMediaState(data) {
  if (typeof data !== 'string' || data.length > MAX_MEDIA_MESSAGE_BYTES) return null;
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return null;
  }
  if (message === null || typeof message !== 'object' || message.type !== MEDIA_TYPE) return null;
  if (!AUDIO_VALUES.includes(message.audio) || !VIDEO_VALUES.includes(message.video)) return null;
  return { audio: message.audio, video: message.video };
}

// For people: '' when everything is on, else e.g. 'muted, camera off'.
export function describeMediaState({ audio, video }) {
  const parts = [];
  if (audio === 'muted') parts.push('muted');
  if (video === 'off') parts.push('camera off');
  else if (video === 'screen') parts.push('sharing the screen');
  return parts.join(', ');
}
