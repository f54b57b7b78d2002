package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder fills a value from a YAML node tree by walking both together, so that strictness
// holds at every depth: every mapping key must be a field's yaml name (a misspelt key is an
// error, never silently dropped), and every bad value is reported with its own line and field
// path, all of them in one pass. Types with their own UnmarshalYAML or UnmarshalText are leaves
// decoded by yaml.v3; structs, lists, maps and pointers are walked here, so a field added
// later is covered without code. A struct's `Line int` field tagged `yaml:"-"` receives the line
// its mapping starts on (for the validation messages of list items).
type decoder struct {
	problems
	// failed holds the paths that did not decode, so validation does not add "missing" to them.
	failed map[string]bool
	lines  map[string]int // where each key and list item was written

	// Aliases may refer to themselves, or expand exponentially ("billion laughs"): refuse both.
	expanding map[*yaml.Node]bool // alias targets being decoded
	visits    int
	maxVisits int
}

func newDecoder(source string, root *yaml.Node) *decoder {
	return &decoder{problems: problems{source: source}, failed: map[string]bool{}, lines: map[string]int{},
		expanding: map[*yaml.Node]bool{}, maxVisits: 10*countNodes(root) + 100_000}
}

// countNodes counts the nodes as written, aliases not expanded.
func countNodes(n *yaml.Node) int {
	count := 1
	for _, c := range n.Content {
		count += countNodes(c)
	}
	return count
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *decoder) fail(n *yaml.Node, path, format string, a ...any) {
	d.failed[path] = true
	d.add(n.Line, path, format, a...)
}

// decode fills v (addressable) from n; path names v in messages, e.g. "subnets[0].options".
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		if d.expanding[n.Alias] {
			d.fail(n, path, "alias *%s refers to itself", n.Value)
			return
		}
		d.expanding[n.Alias] = true
		defer delete(d.expanding, n.Alias)
		n = n.Alias
	}
	if d.visits++; d.visits > d.maxVisits {
		if d.visits == d.maxVisits+1 {
			d.fail(n, path, "aliases expand to more than %d values", d.maxVisits)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing: the zero value, as yaml.v3 does
	}
	t := v.Type()
	pt := reflect.PointerTo(t)
	if t.Kind() != reflect.Pointer && (pt.Implements(yamlUnmarshaler) || pt.Implements(textUnmarshaler)) {
		d.leaf(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list")
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "want a mapping of keys to values")
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			p := path + "." + kn.Value
			if first, dup := seen[kn.Value]; dup {
				d.fail(kn, p, "set twice (first on line %d)", first)
				continue
			}
			seen[kn.Value] = kn.Line
			key, val := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			d.leaf(kn, key, p)
			d.decode(vn, val, p)
			m.SetMapIndex(key, val)
		}
		v.Set(m)
	default:
		d.leaf(n, v, path)
	}
}

// leaf lets yaml.v3 decode one value, and reports its error at the value's line and path.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = strings.Join(te.Errors, "; ")
			// yaml.v3 prefixes "line N: ", which the report already says.
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
				msg = rest
			}
		}
		d.fail(n, path, "%s", msg)
	}
}

// mapping fills struct v from mapping node n, refusing keys that are no field's yaml name.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping (key: value lines or {key: value})")
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Tag == "!!merge" { // "<<: *anchor" or "<<: [*a, *b]": their keys, checked alike
			sources := []*yaml.Node{vn}
			if vn.Kind == yaml.SequenceNode {
				sources = vn.Content
			}
			for _, m := range sources {
				d.decode(m, v, path)
			}
			continue
		}
		p := join(path, kn.Value)
		idx, ok := fields[kn.Value]
		if !ok {
			d.fail(kn, p, "unknown field%s", suggest(kn.Value, fields))
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			d.fail(kn, p, "set twice (first on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		d.lines[p] = kn.Line
		d.decode(vn, v.FieldByIndex(idx), p)
	}
	if f, ok := v.Type().FieldByName("Line"); ok && f.Tag.Get("yaml") == "-" && f.Type.Kind() == reflect.Int {
		v.FieldByIndex(f.Index).SetInt(int64(n.Line))
	}
}

// yamlFields maps each yaml key of struct t to its field, as yaml.v3 names them: the tag's
// name, else the lower-cased field name; "-" and unexported fields have none; ",inline"
// structs lend theirs.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		if strings.Contains(","+flags+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

// suggest says which known key a misspelt one probably meant, or lists them when none is close.
func suggest(key string, fields map[string][]int) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	best, bestDist := "", 1+len(key)/5 // a typo per five letters, at least one
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist <= bestDist && (best == "" || dist < bestDist) {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
}

// editDistance is the optimal string alignment distance: insertions, deletions, substitutions
// and swaps of neighbours count one each.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
