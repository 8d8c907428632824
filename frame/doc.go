// Package frame is livepoll's WebSocket framing layer (RFC 6455) on top of
// github.com/gobwas/ws: an incremental reader of client frames for an event
// loop, and helpers that write server frames.
//
// # Reading
//
// An event-loop worker reads whatever a non-blocking socket holds and passes
// it to [Reader.Feed]. Feed parses every complete frame in those bytes and
// calls the [Handler] for each data message and control frame:
//
//   - A frame that lies whole in the fed bytes and is not part of a
//     fragmented message is unmasked in place and lent to the handler: no
//     copy, no allocation (BenchmarkFeedComplete).
//   - The bytes of an unfinished frame, and the fragments of a message that
//     is not complete yet, are copied into buffers the Reader takes from
//     pools. They grow only as bytes actually arrive, never on the length a
//     peer declares, and go back to their pools as soon as the frame or
//     message is complete. An idle Reader (between messages) holds no buffer
//     and is one pointer wide.
//   - Slices given to the handler are valid only until the handler method
//     returns; a handler that keeps data copies it.
//
// Checks fail fast: a frame header that breaks a rule is rejected as soon as
// the bytes that show it arrive, a data frame is rejected on its declared
// length as soon as that would push the message over the limit, and text is
// validated as UTF-8 while it arrives, so an invalid sequence in the middle
// of a large frame ends the connection without waiting for the rest of it.
// A violation is returned as an [*Error] carrying the close code to send
// (1002, 1007 or 1009); after any error the Reader only repeats that error.
//
// # Compression
//
// permessage-deflate (RFC 7692) with no context takeover: a [Handler] that also
// implements [CompressionHandler] and reports true accepts RSV1 on the first frame
// of a data message. Such a message is assembled compressed, then inflated in one
// go with a pooled decompressor; the limit applies to the inflated size (the output
// stops one byte past it, so a decompression bomb costs at most the limit), and
// text is validated once inflated. Invalid compressed data is a 1002. On the way
// out, [Deflate] compresses one message with a pooled compressor and
// [PutDeflatedHeader] marks its frame. No flate state outlives a message.
//
// # Writing
//
// Server frames are never masked and never fragmented: [AppendFrame],
// [AppendClose] and [PutHeader] encode them, so one encoded frame can be
// written to many connections. The writing functions keep no state and are
// safe for concurrent use; a [Reader] is not.
package frame
