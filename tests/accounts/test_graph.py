"""The Microsoft Graph the portal reads group overage from: the token it asks for follows ``ENTRA_GRAPH_URL``."""
import pytest

from accounts import graph


@pytest.mark.parametrize(("graph_url", "scope"), [
    ("https://graph.microsoft.com", "https://graph.microsoft.com/.default"),
    ("https://graph.microsoft.us", "https://graph.microsoft.us/.default"),  # US Government L4
    ("https://dod-graph.microsoft.us", "https://dod-graph.microsoft.us/.default"),  # US Government L5 (DoD)
    ("https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/.default"),  # 21Vianet
    ("https://Graph.Microsoft.US/", "https://graph.microsoft.us/.default"),
    ("https://127.0.0.1:8443", "https://127.0.0.1:8443/.default"),  # the emulator, which serves Graph too
])
def test_the_graph_token_is_asked_for_the_cloud_of_entra_graph_url(graph_url, scope):
    assert graph.graph_scope(graph_url) == scope
