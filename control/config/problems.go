package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// report adds a problem: line is the list item's (0 for top-level settings, whose line is
// looked up), field its path, e.g. "subnets[0].pools[1]".
type report func(line int, field, format string, a ...any)

// reporter gives each problem the line its setting was written on, and stays silent about
// values that were already refused while reading (a refused MAC is not also "missing").
func (c *Config) reporter(p *problems) report {
	return func(line int, field, format string, a ...any) {
		for f := field; f != ""; f = parentPath(f) {
			if c.undecoded[f] {
				return
			}
		}
		p.add(c.lineOf(line, field), field, format, a...)
	}
}

// lineOf is the line of field (or of its nearest written parent). A list item's line is
// passed in (its Line): the file's lines are used inside it only while the item at that index
// is the one read there, not one an inventory put in its place (or none of the file).
func (c *Config) lineOf(itemLine int, field string) int {
	if i := strings.Index(field, "]"); i >= 0 && (itemLine == 0 || c.lines[field[:i+1]] != itemLine) {
		return itemLine
	}
	for f := field; f != ""; f = parentPath(f) {
		if l := c.lines[f]; l > 0 {
			return l
		}
	}
	return itemLine
}

// parentPath is "subnets[0]" for "subnets[0].cidr", "subnets" for "subnets[0]", "" at the top.
func parentPath(f string) string {
	if i := strings.LastIndexAny(f, ".["); i >= 0 {
		return f[:i]
	}
	return ""
}

// problems collects every error found in a configuration, each as "FILE:LINE: FIELD: MESSAGE"
// (the parts not known left out), to be reported in the order of the file.
type problems struct {
	source string
	list   []problem
}

type problem struct {
	line int
	text string
}

func (p *problems) add(line int, field, format string, a ...any) {
	var parts []string
	switch {
	case p.source != "" && line > 0:
		parts = append(parts, fmt.Sprintf("%s:%d", p.source, line))
	case line > 0:
		parts = append(parts, fmt.Sprintf("line %d", line))
	case p.source != "":
		parts = append(parts, p.source)
	}
	if field != "" {
		parts = append(parts, field)
	}
	p.list = append(p.list, problem{line, strings.Join(append(parts, fmt.Sprintf(format, a...)), ": ")})
}

// err joins the problems by line; those without one (a missing section) come last.
func (p *problems) err() error {
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i].line, p.list[j].line
		return a > 0 && (b == 0 || a < b)
	})
	errs := make([]error, len(p.list))
	for i, q := range p.list {
		errs[i] = errors.New(q.text)
	}
	return errors.Join(errs...)
}
