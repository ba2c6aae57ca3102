#!/bin/sh
# Builds a real kube-apiserver and kube-scheduler (Kubernetes v1.20.2) from Debian's source
# package, for bench/kube_scheduler.py, on a machine that reaches only Debian's archive (no Go
# module proxy, no dl.k8s.io, no container registry).  Debian's `kubernetes` source package
# (bookworm: 1.20.5+really1.20.2) ships the whole tree with vendor/; Debian builds only kubectl
# from it.  etcd comes from Debian's etcd-server package.
#
#     sh bench/k8s/build.sh [OUT]      # OUT defaults to bench/k8s/bin (git-ignored)
#
# Needs: deb-src entries for bookworm (added below when missing), about 1 GB of disk and
# 10-20 minutes on two cores.  The only generated source the tarball lacks is the OpenAPI
# definitions (pkg/generated/openapi/zz_generated.openapi.go), made here by the tree's own
# openapi-gen exactly as Makefile.generated_files does.  Debian's Go is 1.19, and the tree's
# vendored github.com/modern-go/reflect2 v1.0.1 crashes the API server under Go >= 1.18
# ("unexpected fault address" in map iteration, modern-go/reflect2#23): the vendored copies of
# reflect2 and json-iterator are replaced by Debian's v1.0.2 and v1.1.12, the pair that fixed it
# upstream (Kubernetes itself moved to them in v1.23).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/bin}
WORK=${K8S_BUILD_DIR:-/tmp/spillover-k8s-build}
VERSION=v1.20.2
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)

if ! command -v go >/dev/null || ! command -v etcd >/dev/null || ! command -v dpkg-source >/dev/null; then
    apt-get update
    apt-get install -y golang-go etcd-server dpkg-dev
fi
if [ ! -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || [ ! -d /usr/share/gocode/src/github.com/json-iterator/go ]; then
    apt-get install -y golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
fi
if ! apt-cache showsrc kubernetes >/dev/null 2>&1 || [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        > /etc/apt/sources.list.d/spillover-deb-src.sources
    apt-get update
fi
cd "$WORK"
if [ ! -d kubernetes-1.20.2 ]; then
    apt-get source --download-only kubernetes
    tar xzf kubernetes_*.orig.tar.gz
fi
mkdir -p gopath/src/k8s.io
ln -sfn "$WORK/kubernetes-1.20.2" gopath/src/k8s.io/kubernetes
cd gopath/src/k8s.io/kubernetes
export GO111MODULE=off GOPATH="$WORK/gopath"
for pkg in modern-go/reflect2 json-iterator/go; do
    rm -rf "vendor/github.com/$pkg"
    cp -r "/usr/share/gocode/src/github.com/$pkg" "vendor/github.com/$pkg"
    find "vendor/github.com/$pkg" -name '*_test.go' -delete
done

if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
    go build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    dirs=$( (find pkg cmd plugin vendor/k8s.io -name '*.go' -not -path '*/testdata/*'; find -L vendor/k8s.io -name '*.go') 2>/dev/null \
        | grep -v '^vendor/k8s.io/code-generator/\|^vendor/k8s.io/sample-apiserver/' | sort -u \
        | xargs grep -l '+k8s:openapi-gen=' 2>/dev/null | xargs -n1 dirname | LC_ALL=C sort -u \
        | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    "$WORK/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "$WORK/openapi-violations.txt"
fi

V=k8s.io/kubernetes/vendor/k8s.io/component-base/version
LDFLAGS="-X $V.gitVersion=$VERSION -X $V.gitMajor=1 -X $V.gitMinor=20 -X $V.gitTreeState=clean"
for cmd in kube-apiserver kube-scheduler; do
    go build -ldflags "$LDFLAGS" -o "$OUT/$cmd" "./cmd/$cmd"
done
"$OUT/kube-scheduler" --version
echo "built into $OUT; etcd: $(command -v etcd)"
