// The name a received file is offered under, from the name the other side sent, by the
// rules of docs/datachannels.md (the Python peer applies the same ones): the other side
// never chooses a directory, a hidden file or an over-long name for us.

export const MAX_NAME_BYTES = 200;
export const FALLBACK_NAME = 'received-file';

const encoder = new TextEncoder();
// C0, DEL and C1: Unicode's control characters (category Cc).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const RESERVED = /[<>:"|?*]/g;
const LEADING = /^[. ]+/;
const TRAILING = /[. ]+$/;

function utf8Length(text) {
  return encoder.encode(text).length;
}

// The longest prefix of `text` (whole code points) within `budget` bytes of UTF-8.
function truncateUtf8(text, budget) {
  let used = 0;
  let end = 0;
  for (const char of text) {
    const size = utf8Length(char);
    if (used + size > budget) break;
    used += size;
    end += char.length;
  }
  return text.slice(0, end);
}

function shorten(name) {
  if (utf8Length(name) <= MAX_NAME_BYTES) return name;
  const dot = name.lastIndexOf('.');
  // An extension is what follows the last dot, when there is a stem before it and the
  // extension alone leaves room for one.
  const extension = dot > 0 ? name.slice(dot) : '';
  if (extension && utf8Length(extension) < MAX_NAME_BYTES) {
    const stem = truncateUtf8(name.slice(0, dot), MAX_NAME_BYTES - utf8Length(extension));
    return stem + extension;
  }
  return truncateUtf8(name, MAX_NAME_BYTES);
}

export function sanitiseName(raw) {
  const parts = String(raw).split(/[/\\]/);
  let name = parts[parts.length - 1];
  name = name.replace(CONTROL, '').replace(RESERVED, '_');
  name = name.replace(LEADING, '').replace(TRAILING, '');
  // Shortening can leave a dot or space at either end of what remains.
  name = shorten(name).replace(LEADING, '').replace(TRAILING, '');
  return name || FALLBACK_NAME;
}
