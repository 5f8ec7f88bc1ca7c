#!/bin/sh
# `make rpm`: the RPM and source RPM of ecp, from the release binaries,
# completions and SELinux module that `make package-files selinux` left in
# target/. Output: target/rpm/ecp-VERSION-RELEASE.ARCH.rpm and
# target/rpm/ecp-VERSION-RELEASE.src.rpm.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "rpm: no version in Cargo.toml" >&2; exit 1; }
for f in target/release/ecpctl target/release/ecpd target/release/libpam_ecp.so \
    target/completions/ecpctl.bash target/selinux/ecp.pp; do
    [ -e "$f" ] || { echo "rpm: $f missing; run 'make package-files selinux' first" >&2; exit 1; }
done

work=target/rpm/build
rm -rf "$work"
mkdir -p "$work/SOURCES" target/rpm
# The source tarball: the files git tracks, as they are in the tree
# (committed or not), so that nothing untracked (a stray key) is
# published; outside a git checkout, the tree without build output.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z | tar --null -T - --transform "s|^|ecp-$version/|" \
        -czf "$work/SOURCES/ecp-$version.tar.gz"
else
    tar --exclude=./target --exclude=./.git --exclude='./fuzz/target' \
        --transform "s|^\.|ecp-$version|" -czf "$work/SOURCES/ecp-$version.tar.gz" .
fi

rpmbuild() {
    command rpmbuild --define "_topdir $top/$work" --define "ecp_version $version" "$@"
}
# --nodeps: the build requirements are Fedora package names; here the
# binaries come from cargo (ecp_prebuilt).
rpmbuild --nodeps -bs packaging/rpm/ecp.spec >/dev/null
rpmbuild --nodeps --define "ecp_prebuilt $top" -bb packaging/rpm/ecp.spec >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }

if [ ! -e /etc/redhat-release ]; then
    echo "rpm: note: the SELinux module in this RPM is compiled against this machine's" \
        "policy headers; for Fedora/RHEL build the RPM there (rpmbuild --rebuild the .src.rpm)" >&2
fi

rm -f target/rpm/*.rpm
cp "$work"/SRPMS/*.src.rpm "$work"/RPMS/*/*.rpm target/rpm/
ls target/rpm/*.rpm
