package netbios

import (
	"slices"

	"github.com/lanconnect/lanconnect/discovery"
)

// Role returns the role a name table entry announces, if any:
//
//	<00> unique  workstation        <20> unique  file server
//	<03> unique  messenger/user     <1C> group   domain controller
//	<1D> unique  master browser     <1B> unique  domain master browser
//	<1E> group   browser election   __MSBROWSE__<01> group: master browser
//
// Other suffixes, and the group <00> name of a workgroup, announce no role.
func (n NodeName) Role() (discovery.Role, bool) {
	g := n.Flags.Group()
	switch s := n.Name.Suffix(); {
	case s == SuffixWorkstation && !g:
		return discovery.RoleWorkstation, true
	case s == SuffixFileServer && !g:
		return discovery.RoleFileServer, true
	case s == SuffixMessenger && !g:
		return discovery.RoleMessenger, true
	case s == SuffixDomainControllers && g:
		return discovery.RoleDomainController, true
	case s == SuffixMasterBrowser && !g:
		return discovery.RoleMasterBrowser, true
	case s == SuffixDomainMasterBrowser && !g:
		return discovery.RoleDomainMasterBrowser, true
	case s == SuffixBrowserElection && g:
		return discovery.RoleBrowserElection, true
	case s == SuffixBrowseGroup && g && string(n.Name.Raw[:15]) == MSBrowse:
		return discovery.RoleMasterBrowser, true
	}
	return "", false
}

// Identity is what a node status name table says about a computer.
type Identity struct {
	// Name is the computer name: the first unique <00> name, or failing
	// that the first unique <20> name. Empty if the table has neither.
	Name string
	// Domain is the workgroup or domain: the first group <00> name, or
	// failing that the name of a <1C> group or <1B>/<1D> unique name.
	Domain string
	// Roles are the roles announced, in table order, without duplicates.
	Roles []discovery.Role
	// Users are the other unique <03> names: logged-on users on old
	// Windows versions. Never the computer name itself.
	Users []string
}

// Identify reads the computer name, domain and roles from a name table.
// Entries in conflict or being deregistered are ignored.
func Identify(names []NodeName) Identity {
	var id Identity
	var fileServer, domainHint string
	for _, n := range names {
		if n.Flags.Conflict() || n.Flags.Deregistering() {
			continue
		}
		base, s, g := n.Name.Base(), n.Name.Suffix(), n.Flags.Group()
		switch {
		case s == SuffixWorkstation && !g && id.Name == "":
			id.Name = base
		case s == SuffixWorkstation && g && id.Domain == "":
			id.Domain = base
		case s == SuffixFileServer && !g && fileServer == "":
			fileServer = base
		case (s == SuffixDomainControllers && g || (s == SuffixDomainMasterBrowser || s == SuffixMasterBrowser) && !g) && domainHint == "":
			domainHint = base
		}
		if r, ok := n.Role(); ok && !slices.Contains(id.Roles, r) {
			id.Roles = append(id.Roles, r)
		}
	}
	if id.Name == "" {
		id.Name = fileServer
	}
	if id.Domain == "" {
		id.Domain = domainHint
	}
	for _, n := range names {
		if n.Name.Suffix() == SuffixMessenger && !n.Flags.Group() {
			if b := n.Name.Base(); b != id.Name && !slices.Contains(id.Users, b) {
				id.Users = append(id.Users, b)
			}
		}
	}
	return id
}
