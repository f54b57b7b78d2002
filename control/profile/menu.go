package profile

import (
	"fmt"
	"strings"
	"time"

	"github.com/netbootd/netbootd/control/config"
)

// menuLabel is the script label of an item: prefixed, so an inlined profile script's own labels
// do not collide with the menu's.
func menuLabel(key string) string { return "netbootd-" + key }

// menuScript renders a menu profile: iPXE's menu and choose, then one section per item. A
// profile item is that profile's script for this machine, inlined; a chain item chains its URL;
// a local-disk item boots the first disk, or leaves iPXE so the firmware boots the next device.
// An item that returns (a failed boot, a chain that exits) shows the menu again.
func (m Match) menuScript() (string, error) {
	menu := m.c.p.Menu
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString(":netbootd-menu\n")
	title := menu.Title
	if title == "" {
		title = m.c.p.Name
	}
	b.WriteString("menu " + ipxeLine(title) + "\n")
	for _, it := range menu.Items {
		label := it.Label
		if label == "" {
			label = it.Key()
		}
		b.WriteString("item " + it.Key() + " " + ipxeLine(label) + "\n")
	}
	def := menu.Default
	if def == "" {
		def = menu.Items[0].Key()
	}
	choose := "choose --default " + def
	if t := time.Duration(menu.Timeout); t > 0 {
		choose += fmt.Sprintf(" --timeout %d", t.Milliseconds())
	}
	// Esc leaves the menu: iPXE goes on to the firmware's next boot device.
	b.WriteString(choose + " target || exit\n")
	b.WriteString("goto " + menuLabel("${target}") + "\n")
	for i, it := range menu.Items {
		b.WriteString(":" + menuLabel(it.Key()) + "\n")
		switch {
		case it.Profile != "":
			sub := m
			sub.c = m.c.items[i]
			sub.Data.Profile = sub.c.p.Name
			s, err := sub.Script()
			if err != nil {
				return "", err
			}
			b.WriteString(strings.TrimPrefix(s, "#!ipxe\n"))
		case it.Chain != "":
			b.WriteString("chain --autofree " + m.assetURL(it.Chain) + "\n")
		case it.LocalDisk:
			b.WriteString("sanboot --no-describe --drive 0x80 || exit\n")
		}
		b.WriteString("goto netbootd-menu\n")
	}
	return b.String(), nil
}

// ipxeLine makes s one line of iPXE text: no ${ expansion, no line breaks. A menu title or item
// label is the rest of its line, so spaces stay.
func ipxeLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.ReplaceAll(s, "${", "$ {")
}

// menuItems links each profile item of a menu to its compiled profile.
func menuItems(p config.Profile, profiles map[string]*compiled) ([]*compiled, error) {
	items := make([]*compiled, len(p.Menu.Items))
	for i, it := range p.Menu.Items {
		if it.Profile == "" {
			continue
		}
		c := profiles[it.Profile]
		if c == nil {
			return nil, fmt.Errorf("profile: menu %q: item %q names profile %q, which does not exist", p.Name, it.Key(), it.Profile)
		}
		if c.p.Menu != nil {
			return nil, fmt.Errorf("profile: menu %q: item %q is the menu %q: menus do not nest", p.Name, it.Key(), it.Profile)
		}
		items[i] = c
	}
	return items, nil
}
