// A macro expands to the testbench's instance name: the policy must see through it.
`define GOLD good1
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = `GOLD.y;
endmodule
