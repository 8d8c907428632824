// Package kmem reads the kernel memory that TCP sockets cost, for reports beside a
// process's RSS: /proc/net/sockstat (sockets in use, orphans, TIME_WAIT, and the pages
// charged to socket buffers) and, for root, /proc/slabinfo (the slab caches that grow
// with every socket). Linux only; elsewhere Read says it is not supported.
package kmem
