-- The grid topology as the utility's network information system describes it: every node
-- says what it is and, where known, where it stands. Kind defaults to 'other' for nodes
-- loaded before kinds existed (the demo's).
ALTER TABLE grid_nodes ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';
ALTER TABLE grid_nodes ADD COLUMN latitude DOUBLE PRECISION;
ALTER TABLE grid_nodes ADD COLUMN longitude DOUBLE PRECISION;

-- The walk "everything below a node" joins children on their parent.
CREATE INDEX grid_nodes_parent ON grid_nodes (tenant_id, parent_id);
