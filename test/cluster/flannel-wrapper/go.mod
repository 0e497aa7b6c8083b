// Test-time build wrapper for flanneld: github.com/flannel-io/flannel at FLANNEL_VERSION, from the
// Go module proxy. One of its dependencies, Tencent Cloud's VPC SDK (used only by the tencent-vpc
// backend), is not served by the proxy: it is replaced by vpc-stub, whose calls all fail. The test
// cluster uses the vxlan backend.
module moat.local/test/cluster/flannel-wrapper

go 1.26.0

require github.com/flannel-io/flannel v0.28.10

replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => ./vpc-stub
