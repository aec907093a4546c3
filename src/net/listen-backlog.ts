/**
 * The accept queue of every listening socket facing the fleet or browsers (HTTP API and downloads, MQTT
 * over TCP and TLS, a broker-only process's WebSocket port).
 *
 * Node's default is 511. A fleet arrives in bursts: thousands of sites reconnecting after a broker
 * restart, thousands of devices opening their firmware download within a second of a launch. While
 * the event loop is busy the queue fills, the kernel drops the SYNs beyond it and each client waits
 * for its retransmission: 1 s, then 3 s, then 7 s. In the 4,000-site benchmark one job's downloads
 * overflowed a 511 queue ~17,600 times (`nstat` TcpExtListenOverflows); with 4096, not once. Linux
 * caps the value at `net.core.somaxconn` (4096 by default since 5.4).
 */
export const LISTEN_BACKLOG = 4096;
