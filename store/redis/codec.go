package redis

import (
	"errors"
	"strings"
	"time"

	"github.com/sessiond/sessiond/store"
)

// A stored session value is text in three parts:
//
//	'1'                            format version
//	UpdatedAt LastSeenAt ExpiresAt CreatedAt
//	                               unix milliseconds, each %020d (a '-' then
//	                               19 digits when negative): 80 bytes
//	seq                            %020d, set by the create script from a
//	                               per-tag counter: List's order among
//	                               sessions created in the same millisecond
//	userID NUL userAgent NUL ip NUL label NUL
//	user JSON                      the caller's bytes, verbatim, to the end
//
// The header is fixed-width so the Lua scripts rewrite the mutable times
// with string.sub, and the user JSON is the tail so UpdateUser replaces it
// without parsing it: no cjson round trip can reorder its keys or round its
// big numbers. NUL cannot occur in the text fields (they are validated to
// be free of control characters), nor in valid JSON. Decoding takes
// substrings of the value Redis returned: a Get allocates the Session and
// a copy of User, nothing per field.
//
// The byte offsets below are mirrored (1-based) in scripts.go.
const (
	formatVersion = '1'
	msWidth       = 20
	offUpdated    = 1
	offLastSeen   = offUpdated + msWidth  // 21
	offExpires    = offLastSeen + msWidth // 41
	offCreated    = offExpires + msWidth  // 61
	offSeq        = offCreated + msWidth  // 81
	headerLen     = offSeq + msWidth      // 101
	sep           = '\x00'
)

var errMalformed = errors.New("malformed stored session")

// encode renders s, already validated by store.PrepareCreate.
func encode(s *store.Session) string {
	var b strings.Builder
	b.Grow(headerLen + len(s.UserID) + len(s.Device.UserAgent) + len(s.Device.IP) + len(s.Device.Label) + 4 + len(s.User))
	b.WriteByte(formatVersion)
	var buf [msWidth]byte
	for _, t := range [...]time.Time{s.UpdatedAt, s.LastSeenAt, s.ExpiresAt, s.CreatedAt} {
		b.Write(fmtMs(&buf, t.UnixMilli()))
	}
	b.Write(fmtMs(&buf, 0)) // seq: the create script fills it in
	for _, f := range [...]string{s.UserID, s.Device.UserAgent, s.Device.IP, s.Device.Label} {
		b.WriteString(f)
		b.WriteByte(sep)
	}
	b.Write(s.User)
	return b.String()
}

// msString formats one header time for a script argument.
func msString(t time.Time) string {
	var buf [msWidth]byte
	return string(fmtMs(&buf, t.UnixMilli()))
}

// fmtMs writes ms zero-padded to msWidth bytes; it fits any int64.
func fmtMs(buf *[msWidth]byte, ms int64) []byte {
	u := uint64(ms)
	if ms < 0 {
		u = uint64(-ms) // -MinInt64 wraps to itself, which as uint64 is right
	}
	for i := msWidth - 1; i >= 0; i-- {
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	if ms < 0 {
		buf[0] = '-' // 19 digits remain, enough for any int64
	}
	return buf[:]
}

func parseMs(s string) (int64, bool) {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var u uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// decode parses a stored value of the session id. The strings of the
// result share v's memory; User is a copy, since callers may keep it.
func decode(id, v string) (*store.Session, error) {
	if len(v) < headerLen+4 || v[0] != formatVersion {
		return nil, errMalformed
	}
	var ms [5]int64 // the four times, then seq
	for i := range ms {
		n, ok := parseMs(v[offUpdated+i*msWidth : offUpdated+(i+1)*msWidth])
		if !ok {
			return nil, errMalformed
		}
		ms[i] = n
	}
	var f [4]string
	rest := v[headerLen:]
	for i := range f {
		j := strings.IndexByte(rest, sep)
		if j < 0 {
			return nil, errMalformed
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	s := &store.Session{
		ID:         id,
		UserID:     f[0],
		Device:     store.Device{UserAgent: f[1], IP: f[2], Label: f[3]},
		UpdatedAt:  time.UnixMilli(ms[0]),
		LastSeenAt: time.UnixMilli(ms[1]),
		ExpiresAt:  time.UnixMilli(ms[2]),
		CreatedAt:  time.UnixMilli(ms[3]),
	}
	if rest != "" {
		s.User = []byte(rest)
	}
	return s, nil
}

// seqOf reads the creation sequence of a value decode accepted.
func seqOf(v string) int64 {
	n, _ := parseMs(v[offSeq : offSeq+msWidth])
	return n
}
