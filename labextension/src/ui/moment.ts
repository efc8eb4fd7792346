/**
 * How a moment is written to the reader, everywhere in aiide: in their own time zone, and
 * naming it ("Dec 8, 2026, 01:00 GMT+1"), since the same moment (an exam window, a quota's
 * renewal) is shared with people in other zones.
 */
export function momentText(at: Date, locale?: string): string {
  return at.toLocaleString(locale, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short'
  });
}
