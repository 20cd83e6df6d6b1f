// <ratelimit/http/identity.hpp> and <ratelimit/http/ip_address.hpp>: which key a request is
// limited on. Every textual variant of an address gives one key; X-Forwarded-For is read
// only behind trusted proxies, right to left; garbage never becomes a key nor is trusted.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <ratelimit/http/identity.hpp>
#include <ratelimit/http/ip_address.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/invalid_argument.hpp"
#include "support/seed.hpp"

namespace {

using ratelimit::http::client_identity;
using ratelimit::http::identity_options;
using ratelimit::http::identity_source;
using ratelimit::http::ip_address;
using ratelimit::http::ip_network;
using ratelimit_test::invalid_argument_from;

// The canonical text of `text`, or "(invalid)".
std::string canonical(std::string_view text) {
  const std::optional<ip_address> a = ip_address::parse(text);
  return a ? a->to_string() : "(invalid)";
}

// The key identify() gives, or "(unidentified)".
std::string key(const client_identity& identity, std::optional<std::string_view> api_key,
                std::string_view peer, std::optional<std::string_view> forwarded_for = {}) {
  const auto k = identity.identify(api_key, peer, forwarded_for);
  return k ? std::string{k->value()} : "(unidentified)";
}

std::string peer_key(std::string_view peer, identity_options options = {}) {
  return key(client_identity{std::move(options)}, std::nullopt, peer);
}

TEST(IpAddress, ReadsDottedQuads) {
  EXPECT_EQ(canonical("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(canonical("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(canonical("255.255.255.255"), "255.255.255.255");
  EXPECT_TRUE(ip_address::parse("10.1.2.3")->is_v4());
  EXPECT_EQ(ip_address::parse("10.1.2.3")->bits(), 32);
}

TEST(IpAddress, RefusesAmbiguousOrMalformedIPv4) {
  // Leading zeros: octal to inet_aton, decimal to others.
  for (const char* bad :
       {"010.0.0.1", "1.2.3.04", "00.1.2.3", "256.0.0.1", "1.2.3.1000", "1.2.3",    "1.2.3.4.5",
        "1..2.3",    "1.2.3.",   ".1.2.3",   "+1.2.3.4",  "-1.2.3.4",   " 1.2.3.4", "1.2.3.4 ",
        "0x1.2.3.4", "1.2.3.4a", "16909060", "",          "1.2.3.4/32", "a.b.c.d"}) {
    EXPECT_EQ(canonical(bad), "(invalid)") << bad;
  }
}

TEST(IpAddress, OneIPv6AddressHasOneText) {
  // Zero compression and expansion, case, leading zeros in groups.
  for (const char* variant :
       {"2001:db8::1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
        "2001:db8:0:0:0:0:0:1", "2001:db8::0:1", "2001:0DB8::0001", "2001:db8:0::0:0:1"}) {
    EXPECT_EQ(canonical(variant), "2001:db8::1") << variant;
  }
}

TEST(IpAddress, WritesIPv6AsRfc5952Says) {
  EXPECT_EQ(canonical("::"), "::");
  EXPECT_EQ(canonical("0:0:0:0:0:0:0:0"), "::");
  EXPECT_EQ(canonical("::1"), "::1");
  EXPECT_EQ(canonical("1::"), "1::");
  EXPECT_EQ(canonical("FFFF:ffff:FFFF:ffff:FFFF:ffff:FFFF:ffff"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  // The longest run of zeros is compressed; the first, if tied.
  EXPECT_EQ(canonical("2001:db8:0:0:1:0:0:0"), "2001:db8:0:0:1::");
  EXPECT_EQ(canonical("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(canonical("0:0:1:0:0:0:0:1"), "0:0:1::1");
  // A single zero group is not compressed.
  EXPECT_EQ(canonical("2001:db8::1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(canonical("1:0:1:0:1:0:1:0"), "1:0:1:0:1:0:1:0");
  // "::" may stand for a single group when read.
  EXPECT_EQ(canonical("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
  EXPECT_EQ(canonical("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8");
}

TEST(IpAddress, IPv4MappedIPv6IsTheIPv4Address) {
  const ip_address v4 = *ip_address::parse("1.2.3.4");
  for (const char* mapped : {"::ffff:1.2.3.4", "::FFFF:1.2.3.4", "0:0:0:0:0:ffff:1.2.3.4",
                             "::ffff:102:304", "0000:0000:0000:0000:0000:FFFF:0102:0304"}) {
    const std::optional<ip_address> a = ip_address::parse(mapped);
    ASSERT_TRUE(a) << mapped;
    EXPECT_EQ(*a, v4) << mapped;
    EXPECT_TRUE(a->is_v4()) << mapped;
    EXPECT_EQ(a->to_string(), "1.2.3.4") << mapped;
  }
  // Other IPv6 forms ending in an IPv4 address are IPv6 addresses.
  EXPECT_EQ(canonical("::1.2.3.4"), "::102:304");
  EXPECT_EQ(canonical("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
  EXPECT_FALSE(ip_address::parse("::1.2.3.4")->is_v4());
  EXPECT_FALSE(ip_address::parse("::fffe:1.2.3.4")->is_v4());
}

TEST(IpAddress, RefusesMalformedIPv6) {
  for (const char* bad : {":",
                          ":::",
                          "1:::2",
                          "1::2::3",
                          "::1::",
                          "12345::",
                          "00000::1",
                          "1:2:3:4:5:6:7:8:9",
                          "1:2:3:4:5:6:7",
                          "1::2:3:4:5:6:7:8",
                          ":1::",
                          "1::2:",
                          ":1:2:3:4:5:6:7:8",
                          "1:2:3:4:5:6:7:8:",
                          "g::1",
                          "::ffff:1.2.3",
                          "::ffff:1.2.3.04",
                          "::1.2.3.4:1",
                          "1:2:3:4:5:6:7:1.2.3.4",
                          "::ffff:256.1.1.1",
                          "[::1]",
                          "::1%eth0",
                          "::1/128",
                          " ::1",
                          "::1 ",
                          "1.2.3.4::",
                          "::-1",
                          "::+1"}) {
    EXPECT_EQ(canonical(bad), "(invalid)") << bad;
  }
}

TEST(IpAddress, MaskingKeepsThePrefixOfTheFamily) {
  EXPECT_EQ(ip_address::parse("192.0.2.77")->masked(24).to_string(), "192.0.2.0");
  EXPECT_EQ(ip_address::parse("192.0.2.77")->masked(32).to_string(), "192.0.2.77");
  EXPECT_EQ(ip_address::parse("192.0.2.77")->masked(0).to_string(), "0.0.0.0");
  EXPECT_EQ(ip_address::parse("192.0.2.77")->masked(1).to_string(), "128.0.0.0");
  EXPECT_EQ(ip_address::parse("192.0.2.77")->masked(31).to_string(), "192.0.2.76");
  EXPECT_EQ(ip_address::parse("2001:db8:1:2:3:4:5:6")->masked(64).to_string(), "2001:db8:1:2::");
  EXPECT_EQ(ip_address::parse("2001:db8:1:2:3:4:5:6")->masked(63).to_string(), "2001:db8:1:2::");
  EXPECT_EQ(ip_address::parse("2001:db8:1:3:3:4:5:6")->masked(63).to_string(), "2001:db8:1:2::");
  EXPECT_EQ(ip_address::parse("2001:db8:1:2:3:4:5:6")->masked(127).to_string(),
            "2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(ip_address::parse("2001:db8:1:2:3:4:5:7")->masked(127).to_string(),
            "2001:db8:1:2:3:4:5:6");
}

TEST(IpNetwork, HoldsTheAddressesOfItsPrefix) {
  const ip_network ten = ip_network::parse("10.0.0.0/8");
  EXPECT_TRUE(ten.contains(*ip_address::parse("10.255.0.1")));
  EXPECT_TRUE(ten.contains(*ip_address::parse("::ffff:10.1.2.3")));
  EXPECT_FALSE(ten.contains(*ip_address::parse("11.0.0.0")));
  EXPECT_FALSE(ten.contains(*ip_address::parse("::a00:1")));  // ::10.0.0.1, IPv6
  EXPECT_EQ(ten, ip_network::parse("::ffff:10.0.0.0/104"));

  const ip_network doc = ip_network::parse("2001:DB8::/32");
  EXPECT_TRUE(doc.contains(*ip_address::parse("2001:db8:ffff::1")));
  EXPECT_FALSE(doc.contains(*ip_address::parse("2001:db9::1")));

  const ip_network one = ip_network::parse("192.0.2.1");
  EXPECT_TRUE(one.contains(*ip_address::parse("192.0.2.1")));
  EXPECT_FALSE(one.contains(*ip_address::parse("192.0.2.0")));
  EXPECT_TRUE(ip_network::parse("::/0").contains(*ip_address::parse("1.2.3.4")));
  EXPECT_TRUE(ip_network::parse("10.1.2.3/32").contains(*ip_address::parse("10.1.2.3")));
}

TEST(IpNetwork, RefusesBadBlocksQuotingThem) {
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/33"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/33": prefix length must be 0 to 32 (got 33))");
  EXPECT_EQ(invalid_argument_from([] { ip_network::parse("::/129"); }),
            R"(ratelimit::http::ip_network: "::/129": prefix length must be 0 to 128 (got 129))");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.1/8"); }),
      R"(ratelimit::http::ip_network: "10.0.0.1/8": bits are set after the /8 prefix (the block is 10.0.0.0/8))");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/08"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/08": prefix length must be a number 0 to 32 (got "08"))");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/": prefix length must be a number 0 to 32 (got ""))");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/+8"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/+8": prefix length must be a number 0 to 32 (got "+8"))");
  EXPECT_EQ(invalid_argument_from([] { ip_network::parse("banana"); }),
            R"(ratelimit::http::ip_network: "banana": not an IPv4 or IPv6 address: "banana")");
  EXPECT_EQ(invalid_argument_from([] { ip_network::parse(""); }),
            R"(ratelimit::http::ip_network: "": not an IPv4 or IPv6 address: "")");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse(" 10.0.0.0/8"); }),
      R"(ratelimit::http::ip_network: " 10.0.0.0/8": not an IPv4 or IPv6 address: " 10.0.0.0")");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/8\n"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/8\n": prefix length must be a number 0 to 32 (got "8\n"))");
  EXPECT_EQ(
      invalid_argument_from([] { ip_network::parse("10.0.0.0/0"); }),
      R"(ratelimit::http::ip_network: "10.0.0.0/0": bits are set after the /0 prefix (the block is 0.0.0.0/0))");
  EXPECT_EQ(invalid_argument_from([] { ip_network::parse("0.0.0.0/0"); }), "(threw nothing)");
}

TEST(ClientIdentity, IPv4IsKeyedByAddressAndIPv6ByItsSlash64) {
  EXPECT_EQ(peer_key("192.0.2.7"), "ip:192.0.2.7");
  EXPECT_EQ(peer_key("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
  // Every address of one /64 shares its key; the next /64 does not.
  EXPECT_EQ(peer_key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "ip:2001:db8:1:2::/64");
  EXPECT_EQ(peer_key("2001:db8:1:3::1"), "ip:2001:db8:1:3::/64");
  EXPECT_EQ(peer_key("::1"), "ip:::/64");
}

TEST(ClientIdentity, PrefixesAreConfigurable) {
  EXPECT_EQ(peer_key("192.0.2.7", {.ipv4_prefix = 24}), "ip:192.0.2.0/24");
  EXPECT_EQ(peer_key("192.0.2.7", {.ipv4_prefix = 1}), "ip:128.0.0.0/1");
  EXPECT_EQ(peer_key("2001:db8:1:2:3:4:5:6", {.ipv6_prefix = 48}), "ip:2001:db8:1::/48");
  EXPECT_EQ(peer_key("2001:db8:1:2:3:4:5:6", {.ipv6_prefix = 128}), "ip:2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(peer_key("2001:db8:1:2:3:4:5:7", {.ipv6_prefix = 127}), "ip:2001:db8:1:2:3:4:5:6/127");
  // An IPv4-mapped peer is grouped as IPv4.
  EXPECT_EQ(peer_key("::ffff:192.0.2.7", {.ipv4_prefix = 24, .ipv6_prefix = 128}),
            "ip:192.0.2.0/24");
}

TEST(ClientIdentity, RefusesPrefixesOutOfRange) {
  EXPECT_EQ(invalid_argument_from([] { client_identity{{.ipv4_prefix = 0}}; }),
            "ratelimit::http::client_identity: ipv4_prefix must be 1 to 32 (got 0)");
  EXPECT_EQ(invalid_argument_from([] { client_identity{{.ipv4_prefix = 33}}; }),
            "ratelimit::http::client_identity: ipv4_prefix must be 1 to 32 (got 33)");
  EXPECT_EQ(invalid_argument_from([] { client_identity{{.ipv6_prefix = 0}}; }),
            "ratelimit::http::client_identity: ipv6_prefix must be 1 to 128 (got 0)");
  EXPECT_EQ(invalid_argument_from([] { client_identity{{.ipv6_prefix = 129}}; }),
            "ratelimit::http::client_identity: ipv6_prefix must be 1 to 128 (got 129)");
}

TEST(ClientIdentity, TextualVariantsOfOneAddressGiveOneKey) {
  const std::vector<std::vector<const char*>> same{
      {"2001:db8::1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "[2001:db8::1]",
       "[2001:db8::1]:443", " 2001:db8::1\t", "2001:db8::1%eth0", "[2001:db8::1%25en0]:8080",
       "2001:db8:0:0:ffff:1:2:3"},
      {"192.0.2.7", "::ffff:192.0.2.7", "::FFFF:c000:0207", "[::ffff:192.0.2.7]:80",
       "192.0.2.7:65535", "192.0.2.7:0", "\t192.0.2.7 "},
  };
  const client_identity identity;
  for (const auto& group : same) {
    const std::string first = key(identity, std::nullopt, group[0]);
    EXPECT_NE(first, "(unidentified)");
    for (const char* variant : group) {
      EXPECT_EQ(key(identity, std::nullopt, variant), first) << variant;
    }
  }
  EXPECT_NE(key(identity, std::nullopt, "::192.0.2.7"), key(identity, std::nullopt, "192.0.2.7"));
}

TEST(ClientIdentity, APeerThatIsNotAnAddressIsUnidentified) {
  const client_identity identity;
  for (const char* bad : {"",
                          " ",
                          "unknown",
                          "localhost",
                          "010.0.0.1",
                          "[192.0.2.7]",
                          "[2001:db8::1",
                          "2001:db8::1]",
                          "[::1]:",
                          "[::1]:65536",
                          "[::1]:123456",
                          "[::1]x",
                          "[::1]:8o",
                          "192.0.2.7:",
                          "192.0.2.7:http",
                          "192.0.2.7:-1",
                          "192.0.2.7%eth0",
                          "fe80::1%",
                          "fe80::1%a b",
                          "fe80::1%eth0%1",
                          "1:2",
                          "_hidden",
                          "::1, ::2",
                          "192.0.2.7\n"}) {
    EXPECT_EQ(key(identity, std::nullopt, bad), "(unidentified)") << bad;
  }
}

TEST(ClientIdentity, TheApiKeyComesFirst) {
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8"}}};
  const auto k = identity.identify("abc123", "192.0.2.7", "198.51.100.1");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->value(), "key:abc123");
  EXPECT_EQ(k->source(), identity_source::api_key);
  EXPECT_EQ(key(identity, "  abc123\t", "192.0.2.7"), "key:abc123");
  // With no identifying address, the API key still identifies.
  EXPECT_EQ(key(identity, "abc123", "garbage"), "key:abc123");
  // An API key can never equal an address key.
  EXPECT_EQ(key(identity, "ip:192.0.2.7", "192.0.2.7"), "key:ip:192.0.2.7");
  EXPECT_NE(key(identity, "ip:192.0.2.7", "203.0.113.1"), key(identity, std::nullopt, "192.0.2.7"));
}

TEST(ClientIdentity, AnEmptyOrOverlongApiKeyFallsBackToTheAddress) {
  const client_identity identity;
  EXPECT_EQ(key(identity, "", "192.0.2.7"), "ip:192.0.2.7");
  EXPECT_EQ(key(identity, " \t ", "192.0.2.7"), "ip:192.0.2.7");
  const std::string longest(ratelimit::http::client_key::max_api_key_length, 'k');
  EXPECT_EQ(key(identity, longest, "192.0.2.7"), "key:" + longest);
  EXPECT_EQ(key(identity, longest + "k", "192.0.2.7"), "ip:192.0.2.7");
  EXPECT_EQ(key(identity, longest + "k", "garbage"), "(unidentified)");
}

TEST(ClientIdentity, AnUntrustedPeersForwardedForIsIgnored) {
  const client_identity nobody;
  const auto k = nobody.identify(std::nullopt, "192.0.2.7", "198.51.100.1");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->value(), "ip:192.0.2.7");
  EXPECT_EQ(k->source(), identity_source::peer);

  const client_identity behind_ten{{.trusted_proxies = {"10.0.0.0/8"}}};
  EXPECT_EQ(key(behind_ten, std::nullopt, "192.0.2.7", "198.51.100.1"), "ip:192.0.2.7");
  EXPECT_EQ(key(behind_ten, std::nullopt, "192.0.2.7", "garbage"), "ip:192.0.2.7");
}

TEST(ClientIdentity, ATrustedPeersForwardedForIsReadRightToLeft) {
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8", "2001:db8:ffff::/48"}}};
  const auto k = identity.identify(std::nullopt, "10.0.0.1", "198.51.100.1");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->value(), "ip:198.51.100.1");
  EXPECT_EQ(k->source(), identity_source::forwarded_for);

  // client -> 10.0.0.3 -> 10.0.0.2 -> 10.0.0.1 (peer): trusted hops are skipped.
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", "198.51.100.1, 10.0.0.3, 10.0.0.2"),
            "ip:198.51.100.1");
  // Whatever the client wrote itself, left of its own address, is never read: spoofed
  // addresses, trusted-looking addresses, garbage.
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", "1.1.1.1, 198.51.100.1"), "ip:198.51.100.1");
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", "10.9.9.9, 198.51.100.1, 10.0.0.2"),
            "ip:198.51.100.1");
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", "garbage, ::1%, 198.51.100.1"),
            "ip:198.51.100.1");
  // IPv6 hops, brackets and ports as proxies write them.
  EXPECT_EQ(key(identity, std::nullopt, "[2001:db8:ffff::1]:443",
                "[2001:db8:1:2::99]:5123, 2001:DB8:FFFF:0::2"),
            "ip:2001:db8:1:2::/64");
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", "198.51.100.1:4711"), "ip:198.51.100.1");
  // A dual-stack socket reports an IPv4 proxy as IPv4-mapped: still trusted.
  EXPECT_EQ(key(identity, std::nullopt, "::ffff:10.0.0.1", "198.51.100.1"), "ip:198.51.100.1");
  // Several headers joined with ",", with empty elements and spaces around.
  EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", " 198.51.100.1 ,, 10.0.0.2,\t,"),
            "ip:198.51.100.1");
}

TEST(ClientIdentity, WhenEveryHopIsTrustedTheLeftmostIsTheClient) {
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8"}}};
  const auto k = identity.identify(std::nullopt, "10.0.0.1", "10.0.0.5, 10.0.0.6");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->value(), "ip:10.0.0.5");
  EXPECT_EQ(k->source(), identity_source::forwarded_for);
}

TEST(ClientIdentity, ATrustedPeerWithoutForwardedForIsTheClient) {
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8"}}};
  for (const std::optional<std::string_view> xff :
       {std::optional<std::string_view>{}, std::optional<std::string_view>{""},
        std::optional<std::string_view>{" , ,"}}) {
    const auto k = identity.identify(std::nullopt, "10.0.0.1", xff);
    ASSERT_TRUE(k);
    EXPECT_EQ(k->value(), "ip:10.0.0.1");
    EXPECT_EQ(k->source(), identity_source::peer);
  }
}

TEST(ClientIdentity, GarbageWhereATrustedHopWroteIsUnidentified) {
  // A hop we believe says something that is not an address: the client can't be known,
  // and neither the garbage nor the proxy's own address may stand for it.
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8"}}};
  for (const char* xff :
       {"unknown", "198.51.100.1, unknown", "198.51.100.1, 10.0.0.2, _hidden",
        "198.51.100.1, 10.0.0.2:99999", "198.51.100.1, [10.0.0.2]", "198.51.100.1, 010.0.0.2",
        "198.51.100.1 10.0.0.2", "198.51.100.1;10.0.0.2"}) {
    EXPECT_EQ(key(identity, std::nullopt, "10.0.0.1", xff), "(unidentified)") << xff;
  }
}

TEST(ClientIdentity, RefusesBadTrustedProxiesNamingThem) {
  EXPECT_EQ(
      invalid_argument_from([] {
        client_identity{{.trusted_proxies = {"10.0.0.0/8", "10.0.0.0/33"}}};
      }),
      R"(ratelimit::http::client_identity: trusted_proxies[1] "10.0.0.0/33": )"
      R"(ratelimit::http::ip_network: "10.0.0.0/33": prefix length must be 0 to 32 (got 33))");
  EXPECT_EQ(
      invalid_argument_from([] { client_identity{{.trusted_proxies = {"proxy.internal"}}}; }),
      R"(ratelimit::http::client_identity: trusted_proxies[0] "proxy.internal": )"
      R"(ratelimit::http::ip_network: "proxy.internal": not an IPv4 or IPv6 address: "proxy.internal")");
  for (const char* everyone : {"0.0.0.0/0", "::/0", "::ffff:0:0/96", "::/1"}) {
    EXPECT_EQ(invalid_argument_from([&] { client_identity{{.trusted_proxies = {everyone}}}; }),
              std::string{R"(ratelimit::http::client_identity: trusted_proxies[0] ")"} + everyone +
                  R"(": trusts every address of a family, so any client could choose its key)");
  }
  EXPECT_EQ(invalid_argument_from([] {
              client_identity{{.trusted_proxies = {"0.0.0.0/1", "::ffff:0:0/97"}}};
            }),
            "(threw nothing)");
}

// Random text never crashes identify(), never comes out as a key other than a canonical
// address key, and never makes an untrusted peer's header count. ip_address::parse agrees
// with inet_pton, byte for byte.
TEST(ClientIdentity, GarbageNeverCrashesNorIsTrusted) {
  const std::uint64_t seed = ratelimit_test::base_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (RATELIMIT_TEST_SEED)");
  std::mt19937 random{static_cast<std::uint32_t>(seed)};
  constexpr std::string_view alphabet = "0123456789abcdefABCDEF:.[]%, \t/fx-";
  const auto text = [&](bool any_byte) {
    std::string s(std::uniform_int_distribution<std::size_t>{0, 45}(random), '\0');
    for (char& c : s) {
      c = any_byte ? static_cast<char>(std::uniform_int_distribution<int>{0, 255}(random))
                   : alphabet[std::uniform_int_distribution<std::size_t>{
                         0, alphabet.size() - 1}(random)];
    }
    return s;
  };
  const client_identity identity{{.trusted_proxies = {"10.0.0.0/8", "2001:db8::/32"}}};
  int parsed = 0;
  for (int i = 0; i < 200'000; ++i) {
    const bool any_byte = i % 4 == 0;
    const std::string a = text(any_byte), b = text(any_byte);

    // The parser against inet_pton.
    const std::optional<ip_address> ours = ip_address::parse(a);
    std::array<unsigned char, 16> theirs{};
    const bool v4 = inet_pton(AF_INET, a.c_str(), theirs.data() + 12) == 1;
    const bool v6 = !v4 && a.find('\0') == std::string::npos &&
                    inet_pton(AF_INET6, a.c_str(), theirs.data()) == 1;
    if (v4) theirs[10] = theirs[11] = 0xff;
    ASSERT_EQ(ours.has_value(), (v4 || v6) && a.find('\0') == std::string::npos) << a;
    if (ours) {
      ++parsed;
      ASSERT_EQ(std::memcmp(ours->bytes().data(), theirs.data(), 16), 0) << a;
      ASSERT_EQ(ip_address::parse(ours->to_string()), ours) << a;
    }

    // As a peer, untrusted: the header never counts.
    const auto untrusted = identity.identify(std::nullopt, "192.0.2.7", a);
    ASSERT_TRUE(untrusted);
    ASSERT_EQ(untrusted->value(), "ip:192.0.2.7");
    // Anything identify() returns is a canonical address key.
    for (const auto& k : {identity.identify(std::nullopt, a, b),
                          identity.identify(std::nullopt, "10.0.0.1", a + "," + b)}) {
      if (!k) continue;
      ASSERT_TRUE(k->value().starts_with("ip:")) << k->value();
      std::string_view address = k->value().substr(3);
      address = address.substr(0, address.find('/'));
      const std::optional<ip_address> back = ip_address::parse(address);
      ASSERT_TRUE(back) << k->value();
      ASSERT_EQ(back->to_string(), address);
    }
  }
  EXPECT_GT(parsed, 0);  // the alphabet makes addresses too, not only garbage
}

}  // namespace
