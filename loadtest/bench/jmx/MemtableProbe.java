// Prints Cassandra's memtable off-heap bytes (all tables) once per interval, over JMX:
//   java MemtableProbe.java HOST JMX_PORT INTERVAL_S
// One line per reading: "<unix ms> <bytes>". It stays connected, so a long soak pays for
// one JVM instead of a nodetool launch per sample, and exits when its stdin closes (its
// parent is gone) or the connection fails.
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class MemtableProbe {
    private static final String OFF_HEAP =
            "org.apache.cassandra.metrics:type=Table,name=AllMemtablesOffHeapSize";

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: MemtableProbe HOST JMX_PORT INTERVAL_S");
            System.exit(2);
        }
        long intervalMs = (long) (Double.parseDouble(args[2]) * 1000);
        Thread stdinWatch = new Thread(() -> {
            try {
                while (System.in.read() != -1) { }
            } catch (java.io.IOException ignored) { }
            System.exit(0);
        });
        stdinWatch.setDaemon(true);
        stdinWatch.start();
        JMXServiceURL url = new JMXServiceURL(
                "service:jmx:rmi:///jndi/rmi://" + args[0] + ":" + args[1] + "/jmxrmi");
        try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            ObjectName offHeap = new ObjectName(OFF_HEAP);
            while (true) {
                Object value = server.getAttribute(offHeap, "Value");
                System.out.println(System.currentTimeMillis() + " " + value);
                System.out.flush();
                Thread.sleep(intervalMs);
            }
        }
    }
}
