package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func numCPU() int { return runtime.NumCPU() }

// procField reads a "Name:   1234 kB" line of a /proc file; the number is in kB.
func procField(path, name string) (float64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, name))
		if len(fields) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		return v, err == nil
	}
	return 0, false
}

// memory of a process, in MiB: resident now and at its peak.
type procMemory struct {
	RSS, HWM float64
}

func readProcMemory(pid int) (procMemory, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	rss, ok := procField(path, "VmRSS:")
	if !ok {
		return procMemory{}, fmt.Errorf("no VmRSS in %s", path)
	}
	hwm, _ := procField(path, "VmHWM:")
	return procMemory{RSS: rss / 1024, HWM: hwm / 1024}, nil
}
