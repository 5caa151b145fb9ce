"""Deploy tier: the Helm chart, Kubernetes Jobs, images, instance config and step retries, without a cluster."""
