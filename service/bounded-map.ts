// A map that holds at most `capacity` entries, dropping the oldest written when full, in O(1).
// (A plain Map used this way, deleting `keys().next()` on every insert, slows down as deleted
// slots pile up at the front of its table until it is rehashed: the service's caches went from
// microseconds to milliseconds per insert once full.)
export class BoundedMap<V> {
  private readonly entries = new Map<string, { value: V; seq: number }>();
  private readonly ring: Array<string | undefined>;
  private readonly ringSeq: Float64Array;
  private next = 0;
  private seq = 0;

  constructor(capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(1, capacity));
    this.ringSeq = new Float64Array(this.ring.length);
  }

  get(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  set(key: string, value: V): void {
    const slot = this.next;
    this.next = (this.next + 1) % this.ring.length;
    // The slot's previous key goes, unless it was written again since (then a later slot holds it).
    const evicted = this.ring[slot];
    if (evicted !== undefined && this.entries.get(evicted)?.seq === this.ringSeq[slot]) this.entries.delete(evicted);
    const seq = ++this.seq;
    this.ring[slot] = key;
    this.ringSeq[slot] = seq;
    this.entries.set(key, { value, seq });
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.ring.fill(undefined);
  }
}
