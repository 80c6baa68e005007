/**
 * Docker's attach stream of a container without a TTY multiplexes stdout and stderr in frames: an
 * 8-byte header (stream type: 1 stdout, 2 stderr; three zero bytes; payload length, u32 big-endian)
 * followed by the payload. `AttachDemuxer` turns the raw chunks into stdout lines and stderr bytes as
 * they arrive, copying only what it must: payloads are views into the chunks, and a line that spans
 * chunks is joined once, when its newline arrives (dockerode's demuxStream copies the whole buffer on
 * every chunk and then goes through two more streams).
 */
export interface AttachSinks {
  /** One stdout line, without its newline. A view: copy it to keep it past the call. */
  line(line: Buffer): void;
  stderr(chunk: Buffer): void;
  /** A stdout line grew past the limit; what was buffered of it is dropped. */
  oversized(): void;
}

const HEADER_BYTES = 8;
const EMPTY = Buffer.alloc(0);

export class AttachDemuxer {
  private header = EMPTY;
  private frameType = 0;
  private frameLeft = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(
    private readonly sinks: AttachSinks,
    private readonly maxLineBytes: number,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.frameLeft === 0) {
        const need = HEADER_BYTES - this.header.length;
        if (chunk.length - off < need) {
          this.header = Buffer.concat([this.header, chunk.subarray(off)]);
          return;
        }
        const header = this.header.length
          ? Buffer.concat([this.header, chunk.subarray(off, off + need)])
          : chunk.subarray(off, off + HEADER_BYTES);
        off += need;
        this.header = EMPTY;
        this.frameType = header[0];
        this.frameLeft = header.readUInt32BE(4);
        continue;
      }
      const n = Math.min(this.frameLeft, chunk.length - off);
      const payload = chunk.subarray(off, off + n);
      off += n;
      this.frameLeft -= n;
      // Only stdout carries reports; anything else is diagnostics.
      if (this.frameType === 1) this.stdout(payload);
      else this.sinks.stderr(payload);
    }
  }

  private stdout(data: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break;
      const tail = data.subarray(start, nl);
      if (this.partial.length) {
        this.partial.push(tail);
        const line = Buffer.concat(this.partial, this.partialBytes + tail.length);
        this.partial = [];
        this.partialBytes = 0;
        this.sinks.line(line);
      } else {
        this.sinks.line(tail);
      }
      start = nl + 1;
    }
    if (start === data.length) return;
    this.partial.push(start ? data.subarray(start) : data);
    this.partialBytes += data.length - start;
    if (this.partialBytes > this.maxLineBytes) {
      this.partial = [];
      this.partialBytes = 0;
      this.sinks.oversized();
    }
  }
}
