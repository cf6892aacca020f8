import { applyFossilDelta } from './fossil';

/** A delta subscription's notification data: its full JSON text, or a fossil delta against the previous one. */
export interface DeltaData {
  json?: string;
  delta?: string;
}

/**
 * One connection's delta subscriptions (profile `delta`): the last data text per topic, which the
 * next delta applies to. A delta that does not apply (no base, or the checksum fossil carries
 * does not match) throws: the server sent it against a publication this client does not hold.
 */
export class DeltaDecoder {
  private readonly bases = new Map<string, Uint8Array>();

  /** The data's text, and the bytes that came on the wire for it. */
  decode(topic: string, data: DeltaData): { text: Uint8Array; wireBytes: number } {
    if (data.delta === undefined) {
      const text = Buffer.from(data.json ?? 'null');
      this.bases.set(topic, text);
      return { text, wireBytes: text.length };
    }
    const base = this.bases.get(topic);
    if (!base) throw new Error(`a delta on ${topic} before any full payload`);
    const delta = Buffer.from(data.delta);
    const text = applyFossilDelta(base, delta);
    this.bases.set(topic, text);
    return { text, wireBytes: delta.length };
  }
}
