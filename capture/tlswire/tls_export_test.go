package tlswire

// TLSBuffered exposes the bytes a Stream holds in buffers, for the
// external tests of its memory bound.
func TLSBuffered(s *Stream) int { return s.buffered() }

// TLSMaxBuffered is the most TLSBuffered may ever return: per direction, a
// record being collected, a decryption buffer, a handshake message being
// reassembled (its start and a record's worth more) and the hold; with
// server keys, the handshake kept for the extended master secret and a
// ClientKeyExchange.
const TLSMaxBuffered = 2*(tlsMaxRecord+tlsMaxRecord+(4+tlsMaxHandshake+tlsMaxRecord)+tlsMaxHold) + tlsMaxTranscript + tlsMaxHandshake
