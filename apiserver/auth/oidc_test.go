package auth

import (
	"strings"
	"testing"
)

func TestRoleMappingResolve(t *testing.T) {
	m, err := ParseRoleMapping([]byte(`
groups:
  platform: {role: Owner}
  ml-team-a: {role: Editor, workspace: team-a}
  ml-team-b: {role: Editor, workspace: team-b}
  readers: {role: Viewer}
  a-readers: {role: Viewer, workspace: team-a}
users:
  boss@example.com: {role: Viewer}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		user   string
		groups []string
		want   Grant
		ok     bool
	}{
		{"no group", "x@example.com", nil, Grant{}, false},
		{"unknown group", "x@example.com", []string{"sales"}, Grant{}, false},
		{"editor", "x@example.com", []string{"ml-team-a"}, Grant{Role: RoleEditor, Workspace: "team-a"}, true},
		{"owner beats editor", "x@example.com", []string{"ml-team-a", "platform"}, Grant{Role: RoleOwner}, true},
		{"editor beats viewer", "x@example.com", []string{"readers", "ml-team-b"}, Grant{Role: RoleEditor, Workspace: "team-b"}, true},
		{"global viewer beats a workspace's", "x@example.com", []string{"a-readers", "readers"}, Grant{Role: RoleViewer}, true},
		{"two editors: the first by name", "x@example.com", []string{"ml-team-b", "ml-team-a"}, Grant{Role: RoleEditor, Workspace: "team-a"}, true},
		{"the user's own grant wins", "boss@example.com", []string{"platform"}, Grant{Role: RoleViewer}, true},
	} {
		got, ok := m.Resolve(tc.user, tc.groups)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseRoleMappingRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"groups:\n  g: {role: Admin}\n":                    `group "g": role "Admin"`,
		"groups:\n  g: {role: Owner, workspace: team-a}\n": `group "g": an Owner is not limited`,
		"users:\n  u: {role: Editor}\n":                    `user "u": an Editor needs a workspace`,
		"groups:\n  g: {role: Viewer, workspce: team-a}\n": `unknown field`,
	} {
		if _, err := ParseRoleMapping([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
