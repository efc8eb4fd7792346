/**
 * Outputs of a cell run, made to fit in one protocol frame: the model needs the text,
 * not megabytes of base64 images. Big rich data is dropped (its text form kept), then
 * long texts are cut, until the whole list fits.
 */

type Output = Record<string, unknown>;

const size = (value: unknown): number => new TextEncoder().encode(JSON.stringify(value)).length;

function textOnly(output: Output): Output {
  const data = output.data;
  if (typeof data !== 'object' || data === null) {
    return output;
  }
  const plain = (data as Record<string, unknown>)['text/plain'];
  const kept: Record<string, unknown> = {};
  if (plain !== undefined) {
    kept['text/plain'] = plain;
  }
  const dropped = Object.keys(data).filter(k => k !== 'text/plain');
  if (dropped.length > 0 && plain === undefined) {
    kept['text/plain'] = `[${dropped.join(', ')} output omitted]`;
  }
  return { ...output, data: kept };
}

function cut(value: unknown, max: number): unknown {
  const text = Array.isArray(value) ? value.join('') : value;
  if (typeof text !== 'string' || text.length <= max) {
    return value;
  }
  return `${text.slice(0, max)}\n…[${text.length - max} characters cut]`;
}

function shortened(output: Output, max: number): Output {
  const out: Output = { ...output };
  if ('text' in out) {
    out.text = cut(out.text, max);
  }
  if (Array.isArray(out.traceback)) {
    out.traceback = (out.traceback as unknown[]).slice(-20).map(line => cut(line, max));
  }
  if (typeof out.data === 'object' && out.data !== null) {
    const data = out.data as Record<string, unknown>;
    out.data = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, cut(v, max)]));
  }
  return out;
}

/** `outputs` shrunk until their JSON is at most `maxBytes`. */
export function fitOutputs(outputs: readonly Output[], maxBytes: number): Output[] {
  let result = [...outputs];
  if (size(result) <= maxBytes) {
    return result;
  }
  result = result.map(textOnly);
  for (let max = 4000; max >= 100 && size(result) > maxBytes; max = Math.floor(max / 2)) {
    result = result.map(o => shortened(o, max));
  }
  while (result.length > 1 && size(result) > maxBytes) {
    result = result.slice(0, -1);
  }
  return size(result) <= maxBytes ? result : [];
}
