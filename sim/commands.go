package sim

// commands is the simulator's whole command table: one row per program, with
// the flags it accepts in any order and spelling. Extend here.
var commands = []struct {
	name  string
	flags flagSpec
	fn    func(*Host, *args) reply
}{
	{"vgs", lvmReportFlags, (*Host).vgs},
	{"lvs", lvmReportFlags, (*Host).lvs},
	{"vgchange", spec("--lock-start=--lockstart", "--lock-stop=--lockstop", "--lock-opt:=--lockopt", "-y=--yes"), (*Host).vgchange},
	{"lvchange", spec("-a:=--activate", "--refresh", "-y=--yes", "--lock-opt:=--lockopt"), (*Host).lvchange},
	{"lvcreate", spec("-a:=--activate", "-Z:=--zero", "-W:=--wipesignatures", "-y=--yes", "-n:=--name", "-L:=--size", "-s=--snapshot", "--addtag:"), (*Host).lvcreate},
	{"lvrename", nil, (*Host).lvrename},
	{"lvremove", spec("-y=--yes", "-f=--force"), (*Host).lvremove},
	{"lvextend", spec("-L:=--size", "--lock-opt:=--lockopt", "-y=--yes"), (*Host).lvextend},
	{"lvmlockctl", spec("--info=-i", "--dump=-d", "--kill:=-k", "--drop:=-r"), (*Host).lvmlockctl},
	{"sanlock", spec("-D", "-s:", "-h:"), (*Host).sanlock},
	{"multipathd", nil, (*Host).multipathd},
	{"dmsetup", spec("-c=--columns", "--noheadings", "-o:=--options", "--separator:", "--noudevsync"), (*Host).dmsetup},
	{"systemctl", spec("--quiet=-q"), (*Host).systemctl},
	{"virsh", spec("-c:=--connect", "--all", "--name", "--reason"), (*Host).virsh},
	{"dd", nil, (*Host).dd},
}

var lvmReportFlags = spec("--reportformat:", "--units:", "--nosuffix", "-o:=--options", "-a=--all", "--noheadings", "--readonly")
