/**
 * Handler results are JSON made by Python, whose integers have no bound; `JSON.parse` reads every
 * number into a double, so an integer past ±(2^53 − 1) would come out changed and a number past a
 * double's range as Infinity (then `null`). Results are exact or refused: this parse refuses them.
 * Numbers written with a fraction or an exponent are floats on both sides and parse as made.
 */

/** A string token (skipped) or a number token (checked); everything else in JSON has neither. */
const TOKEN = /"(?:[^"\\]|\\.)*"|-?\d+(\.\d+)?([eE][+-]?\d+)?/g;

export type ExactJson = { ok: true; value: unknown } | { ok: false; number: string };

export function parseExactJson(text: string): ExactJson {
  const value: unknown = JSON.parse(text);
  for (const m of text.matchAll(TOKEN)) {
    if (m[0].startsWith('"')) continue;
    const n = Number(m[0]);
    const isInteger = m[1] === undefined && m[2] === undefined;
    if (isInteger ? !Number.isSafeInteger(n) : !Number.isFinite(n)) return { ok: false, number: m[0] };
  }
  return { ok: true, value };
}
