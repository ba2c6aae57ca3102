// Command gosched drives a scheduler extender the way kube-scheduler's HTTPExtender does
// (pkg/scheduler/extender.go): per pod, Filter with every node name (nodeCacheCapable), then
// Prioritize with the nodes Filter kept when more than one is left (schedulePod skips scoring
// for a single feasible node). Each call is json.Marshal of ExtenderArgs, a POST on a
// keep-alive net/http client, and json.NewDecoder(resp.Body).Decode into the result type, as
// HTTPExtender.send does; Filter's names are mapped back to nodes through a map, as
// HTTPExtender.Filter does. Standard library only; the types are re-declared after
// k8s.io/kube-scheduler/extender/v1.
//
// Input: -pods FILE (one Pod JSON per line, each decoded once into a generic value), -names
// FILE (a JSON list of node names). Output: one JSON object with the per-cycle times.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ExtenderArgs is k8s.io/kube-scheduler/extender/v1.ExtenderArgs with the Pod as a generic value.
type ExtenderArgs struct {
	Pod       interface{}
	Nodes     *NodeList
	NodeNames *[]string
}

// NodeList stands for v1.NodeList (the bench offers names only).
type NodeList struct {
	Items []interface{} `json:"items"`
}

// ExtenderFilterResult is k8s.io/kube-scheduler/extender/v1.ExtenderFilterResult.
type ExtenderFilterResult struct {
	Nodes                      *NodeList
	NodeNames                  *[]string
	FailedNodes                map[string]string
	FailedAndUnresolvableNodes map[string]string
	Error                      string
}

// HostPriority is k8s.io/kube-scheduler/extender/v1.HostPriority.
type HostPriority struct {
	Host  string
	Score int64
}

type node struct{ name string }

type timer struct{ encode, call, decode time.Duration }

func send(client *http.Client, url string, args interface{}, result interface{}, t *timer) error {
	start := time.Now()
	out, err := json.Marshal(args)
	if err != nil {
		return err
	}
	encoded := time.Now()
	req, err := http.NewRequest("POST", url, bytes.NewReader(out))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	// The head is read by Do; the body may still be arriving: the decode time below includes
	// reading it, as it does in kube-scheduler.
	answered := time.Now()
	err = json.NewDecoder(resp.Body).Decode(result)
	_, _ = io.Copy(io.Discard, resp.Body) // keep-alive: the body is read to its end
	done := time.Now()
	t.encode += encoded.Sub(start)
	t.call += answered.Sub(encoded)
	t.decode += done.Sub(answered)
	return err
}

func percentile(values []time.Duration, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), values...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	i := int(p / 100 * float64(len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}

func ms(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

// cpuSeconds is the user+system CPU of process pid so far (/proc/PID/stat), or -1.
func cpuSeconds(pid int, tck float64) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || pid <= 0 {
		return -1
	}
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	user, _ := strconv.ParseFloat(fields[11], 64)
	system, _ := strconv.ParseFloat(fields[12], 64)
	return (user + system) / tck
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8888", "the extender's URL prefix")
	podsFile := flag.String("pods", "", "one Pod JSON per line")
	namesFile := flag.String("names", "", "a JSON list of node names")
	seconds := flag.Float64("seconds", 8, "stop after this long")
	warm := flag.Int("warm", 200, "pods scheduled before the clock starts")
	pid := flag.Int("pid", 0, "the extender's process: its CPU during the timed cycles is reported")
	tck := flag.Float64("tck", 100, "clock ticks per second of /proc/PID/stat")
	flag.Parse()

	var names []string
	raw, err := os.ReadFile(*namesFile)
	if err == nil {
		err = json.Unmarshal(raw, &names)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, *namesFile+":", err)
		os.Exit(2)
	}
	nodes := make([]*node, len(names))
	for i, name := range names {
		nodes[i] = &node{name}
	}
	var pods []interface{}
	file, err := os.Open(*podsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		var pod interface{}
		if err := json.Unmarshal(scanner.Bytes(), &pod); err != nil {
			fmt.Fprintln(os.Stderr, *podsFile+":", err)
			os.Exit(2)
		}
		pods = append(pods, pod)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}

	var filterT, prioritizeT timer
	var cycles []time.Duration
	prioritized, eci := 0, 0
	cycle := func(pod interface{}) error {
		start := time.Now()
		offered := make([]string, 0, len(nodes)) // HTTPExtender.Filter: names of the nodes
		fromName := make(map[string]*node, len(nodes))
		for _, n := range nodes {
			offered = append(offered, n.name)
			fromName[n.name] = n
		}
		var result ExtenderFilterResult
		if err := send(client, *url+"/filter", &ExtenderArgs{Pod: pod, NodeNames: &offered}, &result, &filterT); err != nil {
			return err
		}
		if result.Error != "" {
			return fmt.Errorf("filter: %s", result.Error)
		}
		var kept []*node
		if result.NodeNames != nil {
			kept = make([]*node, len(*result.NodeNames))
			for i, name := range *result.NodeNames {
				n, ok := fromName[name]
				if !ok {
					return fmt.Errorf("filter: node %q was not offered", name)
				}
				kept[i] = n
			}
		}
		if len(kept) > 1 {
			keptNames := make([]string, 0, len(kept))
			for _, n := range kept {
				keptNames = append(keptNames, n.name)
			}
			var scores []HostPriority
			if err := send(client, *url+"/prioritize", &ExtenderArgs{Pod: pod, NodeNames: &keptNames}, &scores, &prioritizeT); err != nil {
				return err
			}
			prioritized++
		} else if len(kept) == 1 {
			eci++
		}
		cycles = append(cycles, time.Since(start))
		return nil
	}
	for i := 0; i < *warm && i < len(pods); i++ {
		if err := cycle(pods[i]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	filterT, prioritizeT, cycles, prioritized, eci = timer{}, timer{}, nil, 0, 0
	cpu := cpuSeconds(*pid, *tck)
	begin := time.Now()
	for i := *warm; i < len(pods); i++ {
		if err := cycle(pods[i]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if time.Since(begin).Seconds() > *seconds {
			break
		}
	}
	wall := time.Since(begin)
	serverCPU := cpuSeconds(*pid, *tck) - cpu
	n := len(cycles)
	if n == 0 {
		fmt.Fprintln(os.Stderr, "no pods scheduled: give more pods than -warm")
		os.Exit(1)
	}
	var total time.Duration
	for _, c := range cycles {
		total += c
	}
	out, _ := json.Marshal(map[string]interface{}{
		"cycles":               n,
		"cycles_per_s":         float64(n) / wall.Seconds(),
		"cycle_ms":             ms(total, n),
		"cycle_p50_ms":         percentile(cycles, 50),
		"cycle_p99_ms":         percentile(cycles, 99),
		"filter_encode_ms":     ms(filterT.encode, n),
		"filter_call_ms":       ms(filterT.call, n),
		"filter_decode_ms":     ms(filterT.decode, n),
		"prioritize_encode_ms": ms(prioritizeT.encode, n),
		"prioritize_call_ms":   ms(prioritizeT.call, n),
		"prioritize_decode_ms": ms(prioritizeT.decode, n),
		"prioritized":          prioritized,
		"single_node":          eci,
		"server_ms_per_cycle":  serverCPU * 1000 / float64(n),
	})
	fmt.Println(string(out))
}
