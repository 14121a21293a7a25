//! Raw DEFLATE (RFC 1951) both ways, as IMAP's COMPRESS=DEFLATE (RFC 4978) asks: what the
//! session writes is compressed and sync-flushed each time it is written out, so the client
//! can read every reply at once; what arrives is inflated at most one read's worth at a
//! time, so a small compressed input that expands a thousandfold (a "zip bomb") fills the
//! input buffer no faster than plain input would, and the protocol's limits see it as it
//! arrives.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed octets read and not yet inflated.
    pending: Vec<u8>,
    /// The client ended its compressed stream.
    ended: bool,
}

/// What one inflation gave.
pub enum Inflated {
    /// Octets were added to the output.
    Octets,
    /// Nothing until more compressed input arrives.
    NeedMore,
    /// The client ended the compressed stream: nothing more will come.
    Ended,
}

impl Deflate {
    pub fn new() -> Deflate {
        // RFC 4978 4: raw deflate, no zlib header; a window of 2^15 (the server may use less,
        // the client must accept the largest). Level 1, as a mail server's CPU is worth more
        // than the last tenth of the bandwidth: with level 6 mbsync pulled 10,000 messages at
        // 2,800/s on the benchmark machine, with level 1 at 9,600/s (bench/imap.sh).
        Deflate { inflate: Decompress::new(false), deflate: Compress::new(Compression::fast(), false), pending: Vec::new(), ended: false }
    }

    /// Compressed octets from the socket, to inflate.
    pub fn take(&mut self, compressed: &[u8]) {
        self.pending.extend_from_slice(compressed);
    }

    /// Compressed octets waiting: what the next read may add to.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Inflates what is pending into `out`, at most `room` octets.
    pub fn inflate_into(&mut self, out: &mut Vec<u8>, room: usize) -> io::Result<Inflated> {
        if self.ended {
            return Ok(Inflated::Ended);
        }
        // Called with nothing pending too: the inflater may hold output it had no room for.
        let before = out.len();
        out.reserve(room);
        let mut chunk = Vec::with_capacity(room);
        let consumed_before = self.inflate.total_in();
        let status = self
            .inflate
            .decompress_vec(&self.pending, &mut chunk, FlushDecompress::Sync)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let consumed = (self.inflate.total_in() - consumed_before) as usize;
        self.pending.drain(..consumed);
        out.extend_from_slice(&chunk);
        if status == Status::StreamEnd {
            self.ended = true;
        }
        Ok(match out.len() - before {
            0 if self.ended => Inflated::Ended,
            0 => Inflated::NeedMore,
            _ => Inflated::Octets,
        })
    }

    /// Compresses `plain` and sync-flushes: the octets to write.
    pub fn deflate(&mut self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut rest = plain;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(4096));
            }
            let consumed_before = self.deflate.total_in();
            self.deflate.compress_vec(rest, &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
            rest = &rest[(self.deflate.total_in() - consumed_before) as usize..];
            // Done when all is in and the flush left room to spare: it has written all.
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_in_pieces_and_a_bomb_inflated_a_read_at_a_time() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        let line = b"a1 FETCH 1:* (FLAGS)\r\n".repeat(1000);
        let wire = client.deflate(&line).unwrap();
        assert!(wire.len() < line.len() / 10);
        for piece in wire.chunks(7) {
            server.take(piece);
        }
        let mut input = Vec::new();
        while let Inflated::Octets = server.inflate_into(&mut input, 512).unwrap() {}
        assert!(input == line, "{} of {} octets", input.len(), line.len());
        // 64 MiB of one octet compresses to some 300 KiB (level 1); inflating gives 16 KiB
        // per call.
        let bomb = client.deflate(&vec![b'a'; 64 << 20]).unwrap();
        assert!(bomb.len() < 512 << 10, "{}", bomb.len());
        server.take(&bomb);
        let mut input = Vec::new();
        assert!(matches!(server.inflate_into(&mut input, 16 << 10).unwrap(), Inflated::Octets));
        assert!(input.len() <= 16 << 10);
    }
}
