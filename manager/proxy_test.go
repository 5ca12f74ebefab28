package manager_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/store"
)

// testProxies are the load balancers of the tests: 10.0.0.0/8 and fd00::/8.
// Clients are in the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32).
var testProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}

// TestClientIPBehindProxies: the client IP a Manager records is the first
// untrusted X-Forwarded-For entry from the right, and only when the peer
// is a trusted proxy; nothing a client writes itself is believed.
func TestClientIPBehindProxies(t *testing.T) {
	m, err := manager.New(newMemory(t, nil), manager.Config{TrustedProxies: testProxies})
	require.NoError(t, err)
	const lb = "10.0.0.1:41000" // the load balancer, the direct peer

	cases := []struct {
		name   string
		remote string
		xff    []string // header lines, in order; nil for no header
		want   string
	}{
		{"no header", lb, nil, "10.0.0.1"},
		{"one hop", lb, []string{"203.0.113.7"}, "203.0.113.7"},
		{"two trusted hops", lb, []string{"203.0.113.7, 10.0.0.2"}, "203.0.113.7"},

		// Spoofing: the client writes the left of the list.
		{"spoof: client-supplied leftmost", lb, []string{"198.51.100.66, 203.0.113.7"}, "203.0.113.7"},
		{"spoof: leftmost claims to be a proxy", lb, []string{"10.9.9.9, 203.0.113.7"}, "203.0.113.7"},
		{"spoof: several forged entries", lb, []string{"1.1.1.1, 8.8.8.8, 198.51.100.66, 203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"spoof: forged line before the proxy's", lb, []string{"198.51.100.66", "203.0.113.7"}, "203.0.113.7"},
		{"spoof: untrusted peer sends the header", "203.0.113.7:5000", []string{"198.51.100.66"}, "203.0.113.7"},
		{"spoof: untrusted peer claims a proxy hop", "203.0.113.7:5000", []string{"198.51.100.66, 10.0.0.2"}, "203.0.113.7"},
		{"spoof: garbage left of the client", lb, []string{"<script>, 203.0.113.7"}, "203.0.113.7"},

		// Every hop trusted: the request came from inside; leftmost wins.
		{"all trusted", lb, []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"all trusted, IPv6", lb, []string{"fd00::3, 10.0.0.2"}, "fd00::3"},

		// Several header lines are one list, in order.
		{"lines concatenated", lb, []string{"198.51.100.66, 203.0.113.7", "10.0.0.2"}, "203.0.113.7"},
		{"lines concatenated, client in the last", lb, []string{"10.0.0.3", "203.0.113.7, 10.0.0.2"}, "203.0.113.7"},

		// Malformed entries stop the walk at the last trusted hop's view.
		{"malformed rightmost", lb, []string{"203.0.113.7, not-an-ip"}, "10.0.0.1"},
		{"malformed behind a trusted hop", lb, []string{"203.0.113.7, unknown, 10.0.0.2"}, "10.0.0.2"},
		{"obfuscated identifier", lb, []string{"_hidden"}, "10.0.0.1"},
		{"port out of range", lb, []string{"203.0.113.7:99999"}, "10.0.0.1"},
		{"bracketed IPv4", lb, []string{"[203.0.113.7]:80"}, "10.0.0.1"},
		{"IPv6 with trailing garbage", lb, []string{"2001:db8::7:443x"}, "10.0.0.1"},
		{"zoned IPv6", lb, []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"CIDR", lb, []string{"203.0.113.0/24"}, "10.0.0.1"},
		{"empty line", lb, []string{""}, "10.0.0.1"},
		{"empty elements skipped", lb, []string{" ,203.0.113.7,, \t, "}, "203.0.113.7"},

		// Address forms.
		{"IPv4 with port", lb, []string{"203.0.113.7:5678"}, "203.0.113.7"},
		{"IPv6", lb, []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 with port", lb, []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv6 bracketed", lb, []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"tabs and spaces", lb, []string{"\t203.0.113.7 ,\t10.0.0.2\t"}, "203.0.113.7"},
		{"IPv4-mapped client", lb, []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped trusted hop", lb, []string{"203.0.113.7, [::ffff:10.0.0.2]:80"}, "203.0.113.7"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:41000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"IPv6 peer", "[fd00::1]:443", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 peer, IPv4 client", "[fd00::1]:443", []string{"203.0.113.7, fd00::2"}, "203.0.113.7"},
		{"peer without port", "10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"peer not an IP (Unix socket)", "@", []string{"203.0.113.7"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			r.Header.Set("User-Agent", "ua/1")
			for _, line := range tc.xff {
				r.Header.Add("X-Forwarded-For", line)
			}
			want := store.Device{UserAgent: "ua/1", IP: tc.want}
			require.Equal(t, want, m.DeviceFromRequest(r), "DeviceFromRequest(%s, %q)", tc.remote, tc.xff)
			require.Equal(t, want, m.Credentials(r).Device, "Credentials(%s, %q).Device", tc.remote, tc.xff)
		})
	}
}

// TestClientIPTrustsNobodyByDefault: without TrustedProxies, and in the
// package function whatever the config, the IP is RemoteAddr's and
// forwarding headers are ignored.
func TestClientIPTrustsNobodyByDefault(t *testing.T) {
	m, err := manager.New(newMemory(t, nil), manager.Config{})
	require.NoError(t, err)
	for _, remote := range []string{"10.0.0.1:41000", "203.0.113.7:5000", "[fd00::1]:443"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "198.51.100.66")
		r.Header.Set("Forwarded", "for=198.51.100.66")
		want := netip.MustParseAddrPort(remote).Addr().String()
		require.Equal(t, want, m.DeviceFromRequest(r).IP, "Manager.DeviceFromRequest(%s) without TrustedProxies", remote)
		require.Equal(t, want, manager.DeviceFromRequest(r).IP, "DeviceFromRequest(%s)", remote)
	}

	// The Forwarded header is not read even from a trusted proxy: the
	// proxies write X-Forwarded-For, so Forwarded is the client's.
	behind, err := manager.New(newMemory(t, nil), manager.Config{TrustedProxies: testProxies})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:41000"
	r.Header.Set("Forwarded", "for=198.51.100.66")
	require.Equal(t, "10.0.0.1", behind.DeviceFromRequest(r).IP, "Forwarded was believed")
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	require.Equal(t, "10.0.0.1", manager.DeviceFromRequest(r).IP, "the package function keeps RemoteAddr semantics")
}

// TestTrustedProxiesConfig: an invalid prefix is refused by New with an
// error naming it, before the store is touched; mapped prefixes mean
// their IPv4 network; the Manager keeps its own copy of the list.
func TestTrustedProxiesConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		want    string
	}{
		{"zero prefix", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}, "TrustedProxies[1]"},
		{"bits out of range", []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)}, "TrustedProxies[0]"},
		{"negative bits", []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("fd00::"), -1)}, "TrustedProxies[0]"},
		{"IPv6 bits out of range", []netip.Prefix{testProxies[0], testProxies[1], netip.PrefixFrom(netip.MustParseAddr("fd00::"), 129)}, "TrustedProxies[2]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &countingStore{Store: newMemory(t, nil)}
			m, err := manager.New(st, manager.Config{TrustedProxies: tc.proxies})
			require.Nil(t, m)
			require.ErrorContains(t, err, "manager: invalid config")
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "not a valid network prefix")
			require.Zero(t, st.calls(), "New touched the store")
		})
	}

	proxies := []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104"), netip.MustParsePrefix("192.0.2.77/24"),
		netip.PrefixFrom(netip.MustParseAddr("fe80::1%eth0"), 64)}
	m, err := manager.New(newMemory(t, nil), manager.Config{TrustedProxies: proxies})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("fe80::/64")}, m.Config().TrustedProxies)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:41000"
	r.Header.Set("X-Forwarded-For", "203.0.113.7, 192.0.2.1")
	require.Equal(t, "203.0.113.7", m.DeviceFromRequest(r).IP)

	for i := range proxies {
		proxies[i] = netip.MustParsePrefix("203.0.113.0/24")
	}
	require.Equal(t, "203.0.113.7", m.DeviceFromRequest(r).IP, "changing the caller's slice after New changed the Manager")

	got := m.Config().TrustedProxies
	for i := range got {
		got[i] = netip.MustParsePrefix("203.0.113.0/24")
	}
	require.Equal(t, "203.0.113.7", m.DeviceFromRequest(r).IP, "changing the slice of Config() changed the Manager")
	require.Equal(t, netip.MustParsePrefix("10.0.0.0/8"), m.Config().TrustedProxies[0])
}

// TestSignInBehindProxy: over real HTTP, through a trusted proxy, the
// session SignIn stores, and the ones the JWT step of the resolve chain
// creates, record the real client's IP, whatever the client forged;
// GetUserSessions shows it. Without TrustedProxies they record the peer.
func TestSignInBehindProxy(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	// The proxy in front of the app appended the client it saw,
	// 203.0.113.7, to what the client sent.
	forwarded := http.Header{"X-Forwarded-For": {"198.51.100.66, 10.0.0.5", "203.0.113.7"}}

	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256", cfg: manager.Config{TrustedProxies: loopback}})
	a := newApp(t, e)
	r := a.do(t, "POST", "/login", url.Values{"user": {"alice"}}, forwarded)
	require.Equal(t, http.StatusOK, r.status, r.body)
	list, err := e.m.GetUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, r.body, list[0].ID)
	require.Equal(t, "203.0.113.7", list[0].Device.IP, "SignIn recorded the wrong IP")
	require.Equal(t, "test", list[0].Device.Label, "SignIn's own device fields are kept")

	// The JWT step of the resolve chain creates a session too.
	b := newApp(t, e)
	h := forwarded.Clone()
	h.Set("Authorization", "Bearer "+e.idp.accessToken(t, "42"))
	r = b.do(t, "GET", "/me", nil, h)
	require.Equal(t, http.StatusOK, r.status, r.body)
	list, err = e.m.GetUserSessions(ctx, "42")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "203.0.113.7", list[0].Device.IP, "the JWT step recorded the wrong IP")

	// The secure default: the same request to an app that trusts no proxy.
	plain := newEnv(t, newMemory, envOptions{})
	c := newApp(t, plain)
	r = c.do(t, "POST", "/login", url.Values{"user": {"alice"}}, forwarded)
	require.Equal(t, http.StatusOK, r.status, r.body)
	list, err = plain.m.GetUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.True(t, netip.MustParseAddr(list[0].Device.IP).IsLoopback(), "untrusted peer's X-Forwarded-For believed: %s", list[0].Device.IP)
}

// FuzzClientIP: whatever X-Forwarded-For a request carries, the Manager's
// client IP is the peer's or one of the header's entries, never the
// header's when the peer is untrusted, and always one the store accepts.
// Fuzz with go test ./manager -run '^$' -fuzz FuzzClientIP.
func FuzzClientIP(f *testing.F) {
	m, err := manager.New(newMemory(f, nil), manager.Config{TrustedProxies: testProxies})
	require.NoError(f, err)
	for _, s := range []struct{ remote, xff string }{
		{"10.0.0.1:1", "203.0.113.7"},
		{"10.0.0.1:1", "198.51.100.66, 203.0.113.7, 10.0.0.2"},
		{"10.0.0.1:1", "10.0.0.3,10.0.0.2"},
		{"10.0.0.1:1", "[2001:db8::7]:443, ::ffff:10.0.0.2, garbage"},
		{"[fd00::1]:443", ",, \t[::ffff:203.0.113.7]"},
		{"203.0.113.7:5", "10.0.0.2"},
		{"@", "203.0.113.7"},
		{"[fe80::1%eth0]:80", "fe80::2%eth0"},
	} {
		f.Add(s.remote, s.xff)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header["X-Forwarded-For"] = strings.Split(xff, "\n") // several lines
		got := m.DeviceFromRequest(r)
		peer := manager.DeviceFromRequest(r)
		if got.IP == peer.IP {
			return
		}
		require.NotEmpty(t, peer.IP, "an IP without a peer address")
		require.True(t, slices.ContainsFunc(testProxies, func(p netip.Prefix) bool {
			return p.Contains(netip.MustParseAddr(peer.IP).Unmap().WithZone(""))
		}), "X-Forwarded-For believed from the untrusted peer %s", peer.IP)
		ip, err := netip.ParseAddr(got.IP)
		require.NoError(t, err)
		require.Empty(t, ip.Zone())
		require.False(t, ip.Is4In6())
		var entries []string
		for _, e := range strings.FieldsFunc(xff, func(c rune) bool { return c == ',' || c == '\n' }) {
			e = strings.Trim(e, " \t")
			a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]"))
			if err != nil {
				ap, perr := netip.ParseAddrPort(e)
				a, err = ap.Addr(), perr
			}
			if err == nil {
				entries = append(entries, a.Unmap().String())
			}
		}
		require.Contains(t, entries, got.IP, "the client IP is neither the peer nor an entry of %q", xff)
		_, _, err = m.CreateSession(context.Background(), "u", nil, got)
		require.NoError(t, err, "the store refused the device")
	})
}

// BenchmarkGetServerSessionBehindProxy is the cookie/memory case of
// BenchmarkGetServerSession behind two trusted proxies: a request resolved
// by its session cookie never works out the client IP, so it costs the
// same. DeviceFromRequest is the price paid when a session is created.
func BenchmarkGetServerSessionBehindProxy(b *testing.B) {
	b.Run("cookie/memory", func(b *testing.B) {
		m := benchManager(b, newMemory(b, nil), manager.Config{TrustedProxies: testProxies})
		req := cookieRequest(b, m)
		req.RemoteAddr = "10.0.0.1:41000"
		req.Header.Set("X-Forwarded-For", "198.51.100.66, 203.0.113.7, 10.0.0.2")
		serveGetServerSession(b, m, req)
	})
	b.Run("DeviceFromRequest", func(b *testing.B) {
		m := benchManager(b, newMemory(b, nil), manager.Config{TrustedProxies: testProxies})
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.0.0.1:41000"
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
		req.Header.Set("X-Forwarded-For", "198.51.100.66, 203.0.113.7, 10.0.0.2")
		b.ReportAllocs()
		for b.Loop() {
			if d := m.DeviceFromRequest(req); d.IP != "203.0.113.7" {
				b.Fatalf("IP %q", d.IP)
			}
		}
	})
}
