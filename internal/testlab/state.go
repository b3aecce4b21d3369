package testlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// RunDir holds the global lock file and one state file per lab.
const RunDir = "/run/lanconnect-lab"

// State is what a lab records about itself in RunDir/labs/ID.json, so that
// another process can list it and clean it up when its owner is gone. It is
// written before each resource is created.
type State struct {
	ID         string    `json:"id"`
	OwnerPID   int       `json:"owner_pid"`
	OwnerStart uint64    `json:"owner_start"` // owner's start time in clock ticks, against PID reuse
	OwnerCmd   string    `json:"owner_cmd"`   // Options.Owner, or the owner's executable name, e.g. "lab" or "adauth.test"
	Created    time.Time `json:"created"`
	Dir        string    `json:"dir"`
	Prefix     string    `json:"prefix,omitempty"`
	Bridge     string    `json:"bridge,omitempty"`
	Netns      []string  `json:"netns,omitempty"`
	Links      []string  `json:"links,omitempty"`
	Users      []string  `json:"users,omitempty"`
	Groups     []string  `json:"groups,omitempty"`
	PIDs       []int     `json:"pids,omitempty"`
	Summary    string    `json:"summary,omitempty"` // human-readable contents, no secrets
}

// OwnerAlive reports whether the process that started the lab still runs.
func (s *State) OwnerAlive() bool {
	return alive(s.OwnerPID) && procStartTime(s.OwnerPID) == s.OwnerStart
}

// StatePath returns the path of the state file of the lab with this ID.
func StatePath(id string) string { return filepath.Join(RunDir, "labs", id+".json") }

func (s *State) save() error {
	if err := os.MkdirAll(filepath.Join(RunDir, "labs"), 0o755); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	tmp := StatePath(s.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	if err := os.Rename(tmp, StatePath(s.ID)); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	return nil
}

// Labs returns the recorded state of every lab on this machine, running or
// stale, sorted by creation time.
func Labs() ([]*State, error) {
	ents, err := os.ReadDir(filepath.Join(RunDir, "labs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	var out []*State
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(RunDir, "labs", e.Name()))
		if err != nil {
			continue
		}
		var s State
		if json.Unmarshal(b, &s) != nil || s.ID == "" {
			continue
		}
		out = append(out, &s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// globalLock takes the machine-wide lab lock (an flock on RunDir/lock)
// until the returned function is called. It serialises subnet and name
// choice and stale-lab cleanup between processes.
func globalLock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	return flockFile(ctx, filepath.Join(RunDir, "lock"))
}

// flockFile takes an exclusive flock on path, creating it, and polls until
// it gets it or ctx ends.
func flockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("testlab: flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryLock takes an exclusive flock on path without waiting; ok is false if
// another holds it.
func tryLock(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, true
}

// Cleanup tears down what s records: every process in its namespaces and
// every recorded PID that still belongs to it, the namespaces, links, host
// users and groups, /etc/netns entries, the directory and the state file.
// It is safe to call on a partly created or already cleaned lab. It does
// not check whether the owner is alive; CleanupStale does. It takes the
// global lock while it deletes host users and groups.
func Cleanup(ctx context.Context, s *State) error {
	return cleanup(ctx, s, false)
}

// cleanup is Cleanup; locked says the caller holds the global lock.
func cleanup(ctx context.Context, s *State, locked bool) error {
	var errs []error
	// Processes first: a namespace lives on while a process is in it.
	var pids []int
	for _, ns := range s.Netns {
		pids = append(pids, netnsPids(ctx, ns)...)
	}
	for _, pid := range s.PIDs {
		if alive(pid) && belongsTo(pid, s) {
			pids = append(pids, pid)
		}
	}
	if err := killPids(dedup(pids), 3*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range s.Netns {
		if nsExists(ns) {
			if _, err := run(ctx, nil, nil, "ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
		_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
	links := append([]string{}, s.Links...)
	if s.Bridge != "" {
		links = append(links, s.Bridge)
	}
	for _, l := range links {
		if linkExists(l) {
			if _, err := run(ctx, nil, nil, "ip", "link", "delete", l); err != nil && linkExists(l) {
				errs = append(errs, err)
			}
		}
	}
	if !locked && (len(s.Users) > 0 || len(s.Groups) > 0) {
		// useradd and userdel of concurrent labs must not race for
		// /etc/passwd's lock.
		unlock, err := globalLock(ctx)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		defer unlock()
	}
	for _, u := range s.Users {
		if userExists(u) {
			if _, err := run(ctx, nil, nil, "userdel", u); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, g := range s.Groups {
		if groupExists(g) {
			if _, err := run(ctx, nil, nil, "groupdel", g); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.Dir != "" && strings.Contains(s.Dir, "lanconnect-lab") {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("testlab: %w", err))
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(StatePath(s.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("testlab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// CleanupStale cleans every recorded lab whose owner process is gone and
// returns their IDs. It takes the global lock.
func CleanupStale(ctx context.Context) ([]string, error) {
	unlock, err := globalLock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return cleanupStaleLocked(ctx)
}

func cleanupStaleLocked(ctx context.Context) ([]string, error) {
	labs, err := Labs()
	if err != nil {
		return nil, err
	}
	var ids []string
	var errs []error
	for _, s := range labs {
		if s.OwnerAlive() {
			continue
		}
		ids = append(ids, s.ID)
		if err := cleanup(ctx, s, true); err != nil {
			errs = append(errs, fmt.Errorf("stale lab %s: %w", s.ID, err))
		}
	}
	return ids, errors.Join(errs...)
}

// belongsTo reports whether pid's command line mentions the lab directory,
// so a reused PID of an unrelated process is never killed.
func belongsTo(pid int, s *State) bool {
	if s.Dir == "" {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), s.Dir)
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

func userExists(name string) bool  { return dbHas("/etc/passwd", name) }
func groupExists(name string) bool { return dbHas("/etc/group", name) }

func dbHas(file, name string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			return true
		}
	}
	return false
}

func dedup(xs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
