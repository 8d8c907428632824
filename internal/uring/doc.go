// Package uring sends to many sockets with one system call, through a minimal io_uring
// (Linux 5.6 and later): Prepare queues one sendmsg per socket, Submit hands them all to
// the kernel in one io_uring_enter and collects every result.
//
// It exists because a system call crossing is expensive where the kernel isolates page
// tables (about 3 µs on the machine livepoll is measured on): a fan-out of one frame to
// 10,000 sockets costs 10,000 writev calls, or 40 io_uring_enter calls with 256 sends
// each. Every send carries MSG_DONTWAIT, so a socket whose buffer is full completes at
// once with EAGAIN (the caller waits for its writable edge, as after a writev) and Submit
// never waits for a slow client. PrepareRecv does the same for receives, for a
// client fleet that reads many ready sockets after one epoll_wait. It is not a general
// io_uring binding: no registered buffers, no polling thread.
//
// New returns an error where io_uring is missing or forbidden (old kernels, seccomp
// filters, kernel.io_uring_disabled); callers then write with writev.
package uring
