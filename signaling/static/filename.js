// The name a received file is offered under, from the name the other side sent, by the
// rules of docs/datachannels.md; the Python peer (peer/data/filenames.py) applies the same
// ones, so a file gets the same name whichever side receives it. The other side never
// chooses a directory, a hidden file, an invisible character or an over-long name.

export const MAX_NAME_BYTES = 200;
export const FALLBACK_NAME = 'received-file';
// An extension worth keeping when the stem is shortened: short, no spaces.
const MAX_SUFFIX_BYTES = 20;

const encoder = new TextEncoder();
// What Python's str.isprintable() refuses: control and format characters, unassigned and
// private-use code points, lone surrogates, and every separator but the ASCII space (a
// right-to-left override or a zero-width space could disguise a name).
const UNPRINTABLE = /[\p{C}\p{Z}]/gu;
// ...and the characters that look like a slash: a name shown as '..∕etc' must not read as a path.
const RESERVED = /[<>:"|?*\u2215\u29f8\uff0f\u2044]/g;
// Names Windows gives to devices whatever the extension ('nul.txt' is NUL).
const DEVICE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])$/i;

function utf8Length(text) {
  return encoder.encode(text).length;
}

// The longest prefix of `text` (whole code points) within `limit` bytes of UTF-8.
function cut(text, limit) {
  let used = 0;
  let end = 0;
  for (const char of text) {
    used += utf8Length(char);
    if (used > limit) break;
    end += char.length;
  }
  return text.slice(0, end);
}

function stripEnd(text) {
  return text.replace(/[. ]+$/, '');
}

/** ['report.tar', '.gz'] for 'report.tar.gz'; no suffix for 'README' or 'a.long suffix'. */
export function splitSuffix(name) {
  const dot = name.lastIndexOf('.');
  const suffix = dot >= 0 ? name.slice(dot + 1) : '';
  if (dot <= 0 || suffix.includes(' ') || utf8Length(suffix) + 1 > MAX_SUFFIX_BYTES) {
    return [name, ''];
  }
  return [name.slice(0, dot), `.${suffix}`];
}

function shorten(name, limit) {
  if (utf8Length(name) <= limit) return name;
  const [stem, suffix] = splitSuffix(name);
  const shortStem = stripEnd(cut(stem, limit - utf8Length(suffix)));
  return shortStem ? shortStem + suffix : stripEnd(cut(name, limit));
}

export function sanitiseName(raw) {
  const parts = String(raw).split(/[/\\]/);
  let name = parts[parts.length - 1];
  name = name.replace(UNPRINTABLE, (char) => (char === ' ' ? char : ''));
  name = name.replace(RESERVED, '_');
  name = name.replace(/^[. ]+/, '');
  name = stripEnd(name);
  // A leading '-' is not an option to whatever command the name is typed into.
  if (name.startsWith('-')) name = `_${name}`;
  if (DEVICE.test(name.split('.')[0].replace(/ +$/, ''))) name = `_${name}`;
  return shorten(name, MAX_NAME_BYTES) || FALLBACK_NAME;
}
