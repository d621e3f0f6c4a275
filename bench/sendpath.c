// bench/sendpath.c: what sending one response body costs the sender's CPU (and the
// receiver's), by four ways of sending, over loopback TCP to a receiver draining on CPU 1:
//   0 send-heap       send() from a heap buffer (a cached entry on the heap)
//   1 sendfile-memfd  sendfile() from a memfd (a sealed cache entry, host-server/src/memfd.rs)
//   2 sendfile-file   sendfile() from a page-cached file (an uncached body, not used: see README)
//   3 pread+send      pread() + send() through a 512 KiB buffer (an uncached body today)
//
//   gcc -O2 -pthread bench/sendpath.c -o /tmp/sendpath
//   head -c 268435456 /dev/urandom > /tmp/f256; cat /tmp/f256 > /dev/null
//   /tmp/sendpath SIZE MODE ITERATIONS /tmp/f256
//     -> "SIZE MODE sender_us=... receiver_us=..." (thread CPU time per body)
//
// Run the modes in interleaved rounds (README, Speed) and take medians: the machine is shared.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/sendfile.h>
#include <sys/mman.h>
static double tcpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec*1e9+t.tv_nsec;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static int rfd; static long long total; static double rcpu;
static void *rx(void*a){pin(1);char*b=malloc(1<<20);long long got=0;double t0=tcpu();
 while(got<total){ssize_t n=recv(rfd,b,1<<20,0);if(n<=0)break;got+=n;} rcpu=tcpu()-t0;return 0;}
int main(int argc,char**argv){
 size_t size=strtoul(argv[1],0,0); int mode=atoi(argv[2]); int iters=atoi(argv[3]); const char*path=argv[4];
 int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};
 bind(l,(void*)&a,sizeof a);listen(l,1);socklen_t al=sizeof a;getsockname(l,(void*)&a,&al);
 int c=socket(AF_INET,SOCK_STREAM,0);connect(c,(void*)&a,sizeof a);int s=accept(l,0,0);rfd=c;
 int one=1;setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
 char*heap=malloc(size);memset(heap,7,size);
 int mfd=memfd_create("e",MFD_CLOEXEC|MFD_ALLOW_SEALING);ftruncate(mfd,size);
 {size_t w=0;while(w<size){ssize_t n=pwrite(mfd,heap+w,size-w,w);w+=n;}}
 int ffd=open(path,O_RDONLY);char*buf=malloc(512*1024);
 total=(long long)size*iters;pthread_t t;pin(0);pthread_create(&t,0,rx,0);
 double t0=tcpu();
 for(int i=0;i<iters;i++){
  if(mode==0){size_t w=0;while(w<size){ssize_t n=send(s,heap+w,size-w,0);w+=n;}}
  else if(mode==1||mode==2){int fd=mode==1?mfd:ffd;off_t o=0;while((size_t)o<size){ssize_t n=sendfile(s,fd,&o,size-o);if(n<=0){perror("sendfile");return 1;}}}
  else {size_t o=0;while(o<size){size_t k=size-o<512*1024?size-o:512*1024;ssize_t n=pread(ffd,buf,k,o);size_t w=0;while(w<(size_t)n){ssize_t m=send(s,buf+w,n-w,0);w+=m;}o+=n;}}
 }
 double sc=tcpu()-t0;pthread_join(t,0);
 printf("%zu %s sender_us=%.2f receiver_us=%.2f\n",size,(const char*[]){"send-heap","sendfile-memfd","sendfile-file","pread+send"}[mode],sc/iters/1e3,rcpu/iters/1e3);
 return 0;}
