#!/usr/bin/env bash
# Golden capture: BIRD 2 (ns fbg-ga, AS 4200000001) <-> FRR bgpd (ns fbg-gb, AS 64513).
# Re-creates the golden captures used in codec/tests.rs (needs root, bird2, frr, tcpdump, tshark).
# Afterwards: tshark -r /tmp/fbg-golden/cap.pcap -T fields -e ip.src -e ipv6.src -e tcp.payload 'tcp.len>0'
# and split each payload into BGP messages by the 2-octet length after the 16-octet marker.
set -euo pipefail
D=/tmp/fbg-golden/lab; rm -rf $D; mkdir -p $D/frr; chmod 755 $D
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; ip netns del fbg-ga 2>/dev/null || true; ip netns del fbg-gb 2>/dev/null || true; }
trap cleanup EXIT
for ns in fbg-ga fbg-gb; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add fbgga type veth peer name fbggb; ip link set fbgga netns fbg-ga; ip link set fbggb netns fbg-gb
ip -n fbg-ga addr add 10.200.50.1/24 dev fbgga; ip -n fbg-ga addr add fd00:200:50::1/64 dev fbgga nodad
ip -n fbg-gb addr add 10.200.50.2/24 dev fbggb; ip -n fbg-gb addr add fd00:200:50::2/64 dev fbggb nodad
ip -n fbg-ga link set fbgga up; ip -n fbg-gb link set fbggb up
sleep 2
cat > $D/bird.conf <<EOC
router id 10.200.50.1;
log "$D/bird.log" all;
protocol device {}
protocol static st4 { ipv4; route 10.200.0.10/32 blackhole; }
protocol static st6 { ipv6; route fd00:200::10/128 blackhole; }
protocol bgp v4 {
  local 10.200.50.1 as 4200000001; neighbor 10.200.50.2 as 64513;
  hold time 9; connect retry time 2;
  ipv4 { import all; export filter { if source = RTS_STATIC then {
           bgp_community.add((64512,100)); bgp_large_community.add((4200000001,1,2)); accept; } reject; }; };
}
protocol bgp v6 {
  local fd00:200:50::1 as 4200000001; neighbor fd00:200:50::2 as 64513;
  hold time 9; connect retry time 2;
  ipv6 { import all; export filter { if source = RTS_STATIC then { bgp_community.add((64512,600)); accept; } reject; }; };
}
EOC
bird -p -c $D/bird.conf
cat > $D/frr.conf <<EOC
frr defaults traditional
hostname frr-g
log file $D/frr/frr.log
!
route-map SETC permit 10
 set community 64513:200
 set large-community 64513:3:4
 set local-preference 150
!
router bgp 64513
 bgp router-id 10.200.50.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.200.50.1 remote-as 4200000001
 neighbor 10.200.50.1 timers 3 9
 neighbor 10.200.50.1 timers connect 2
 neighbor fd00:200:50::1 remote-as 4200000001
 neighbor fd00:200:50::1 timers 3 9
 neighbor fd00:200:50::1 timers connect 2
 address-family ipv4 unicast
  network 10.201.0.0/24 route-map SETC
  no neighbor fd00:200:50::1 activate
 exit-address-family
 address-family ipv6 unicast
  network fd00:200:201::/64 route-map SETC
  neighbor fd00:200:50::1 activate
 exit-address-family
!
EOC
chown -R frr:frr $D/frr
ip netns exec fbg-ga tcpdump -i fbgga -n -s 0 -U -w $D/cap.pcap 'tcp port 179' > $D/tcpdump.out 2>&1 & PIDS+=($!)
sleep 1
FRRARGS="-f $D/frr.conf -z $D/frr/zserv.api --vty_socket $D/frr -u frr -g frr -P 0"
ip netns exec fbg-gb /usr/lib/frr/zebra -i $D/frr/zebra.pid $FRRARGS > $D/zebra.out 2>&1 & PIDS+=($!)
sleep 1
ip netns exec fbg-gb /usr/lib/frr/bgpd -i $D/frr/bgpd.pid $FRRARGS > $D/bgpd.out 2>&1 & PIDS+=($!)
ip netns exec fbg-ga bird -f -c $D/bird.conf -s $D/bird.ctl > $D/bird.out 2>&1 & PIDS+=($!)
for i in $(seq 1 30); do
  n=$(birdc -s $D/bird.ctl show protocols 2>/dev/null | grep -c Established || true)
  [ "$n" = 2 ] && break; sleep 1
done
sleep 6
birdc -s $D/bird.ctl show protocols
birdc -s $D/bird.ctl show route all
ip netns exec fbg-gb vtysh --vty_socket $D/frr -c 'show bgp ipv4 unicast' -c 'show bgp ipv6 unicast'
# withdraw on BIRD side to capture a withdrawal, then clean shutdown (Cease)
birdc -s $D/bird.ctl disable st4; birdc -s $D/bird.ctl disable st6; sleep 2
birdc -s $D/bird.ctl disable v4; sleep 1
kill ${PIDS[0]}; sleep 1
cp $D/cap.pcap /tmp/fbg-golden/cap.pcap
echo DONE
