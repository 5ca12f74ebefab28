// Command benchtable reads `go test -bench` output (several -count runs,
// several packages) on stdin and prints one Markdown row per benchmark
// and -cpu value: the median ns/op, ops/s and allocs/op, the ratio of
// ns/op to the Redis floor (BenchmarkFloor/GET of the same variant,
// Serial or P16, and -cpu), and the median of any custom metric.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-(\d+))?\s+\d+\s+(.*)$`)

type key struct{ name, cpu string }

func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func main() {
	samples := map[key]map[string][]float64{}
	var order []key
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		k := key{m[1], m[2]}
		if k.cpu == "" {
			k.cpu = "1"
		}
		if samples[k] == nil {
			samples[k] = map[string][]float64{}
			order = append(order, k)
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			samples[k][f[i+1]] = append(samples[k][f[i+1]], v)
		}
	}
	floor := func(k key) float64 {
		variant := k.name[strings.LastIndex(k.name, "/")+1:]
		if s := samples[key{"Floor/GET/" + variant, k.cpu}]["ns/op"]; len(s) > 0 {
			return median(s)
		}
		return 0
	}
	fmt.Println("| benchmark | cpu | runs | ns/op | ops/s | allocs/op | ns/op ÷ floor GET | other |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		s := samples[k]
		ns := median(s["ns/op"])
		ratio, ops, allocs := "", "", ""
		if f := floor(k); f > 0 && ns > 0 && !strings.HasPrefix(k.name, "Memory") && !strings.HasPrefix(k.name, "Redis") {
			ratio = fmt.Sprintf("%.3g", ns/f)
		}
		if ns > 0 && len(s["B/session"]) == 0 && len(s["idle-stall-ms"]) == 0 {
			ops = fmt.Sprintf("%.0f", 1e9/ns)
		}
		if a, ok := s["allocs/op"]; ok {
			allocs = fmt.Sprintf("%.0f", median(a))
		}
		var other []string
		for _, u := range []string{"B/session", "stall-ms", "idle-stall-ms", "stall-nogc-ms", "idle-stall-nogc-ms", "req/s", "p50-ms", "p99-ms"} {
			if v, ok := s[u]; ok {
				other = append(other, fmt.Sprintf("%.4g %s", median(v), u))
			}
		}
		nsText := fmt.Sprintf("%.4g", ns)
		if len(s["B/session"]) > 0 || len(s["idle-stall-ms"]) > 0 {
			nsText, allocs = "", ""
		}
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s |\n", k.name, k.cpu, len(s["ns/op"]), nsText, ops, allocs, ratio, strings.Join(other, ", "))
	}
}
